"""The HTTP contract in one place: typed request bodies that both validate requests
and generate the OpenAPI document.

A route handler declares its body (and its success response, where practical)
with `@documented(...)`; `read_model` parses the body into that msgspec Struct,
so the validator and the schema are the same object and cannot drift.

Unknown-field policy (decided once, for every body): unknown keys are accepted
and ignored, as hive's own handlers do; newer hive frontends send fields older
ones did not. The schema says so (`additionalProperties` is not false).

Error texts: msgspec's messages are translated into hive's (`'queen_name' must be
a string`), so clients see the same words they saw from hive. A field whose
default is None treats null as "not given" (hive's `body.get(key)`), so its
message does not offer null; a field where null means something (`icon: null`
clears the icon) says "a string or null".

The size limit is not checked here: BodyLimitMiddleware is the one place (413).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.http.body import RequestError, read_body

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


class Body(msgspec.Struct, forbid_unknown_fields=False, kw_only=True):
    """Base of every request body: unknown keys are ignored (see module docstring)."""


@dataclass(frozen=True)
class Doc:
    """What a route takes and answers, for the generated OpenAPI document."""

    summary: str
    body: type[Any] | None = None
    body_required: bool = True
    status: int = 200
    response: Any = None  # a type for the success body, or None for "any JSON object"
    errors: tuple[int, ...] = ()
    query: dict[str, Any] = field(default_factory=dict)  # name -> type (Annotated for Meta)
    headers: dict[str, Any] = field(default_factory=dict)  # request header name -> type
    media_type: str = "application/json"  # of the success body
    also: tuple[int, ...] = ()  # further success statuses with the same body (e.g. 200 on update)


DOC_ATTRIBUTE = "__hivelog_doc__"


def documented(
    summary: str,
    *,
    body: type[Any] | None = None,
    body_required: bool = True,
    status: int = 200,
    response: Any = None,
    errors: tuple[int, ...] = (),
    query: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
    media_type: str = "application/json",
    also: tuple[int, ...] = (),
) -> Callable[[Handler], Handler]:
    """Attach a `Doc` to a handler; the OpenAPI generator reads it from the route."""
    doc = Doc(
        summary,
        body,
        body_required,
        status,
        response,
        errors,
        query or {},
        headers or {},
        media_type,
        also,
    )

    def attach(handler: Handler) -> Handler:
        setattr(handler, DOC_ATTRIBUTE, doc)
        return handler

    return attach


def doc_of(handler: object) -> Doc | None:
    value = getattr(handler, DOC_ATTRIBUTE, None)
    return value if isinstance(value, Doc) else None


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
}
_EXPECTED = re.compile(r"^Expected `([^`]+)`(?:, got `[^`]+`)?(.*?)(?: - at `\$(.*)`)?$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`(?: - at `\$(.*)`)?$")


def _field_name(path: str) -> str:
    """`.trigger_config.cron` -> `trigger_config.cron`; `.z[0]` -> `z[0]`."""
    return path.lstrip(".")


def _kind_words(kind: str, *, offer_null: bool = True) -> str:
    words = [_TYPE_WORDS.get(part.strip(), part.strip()) for part in kind.split("|")]
    words = [w for w in words if w != "null"]
    text = " or ".join(words) if words else kind
    return text + (" or null" if offer_null and "null" in kind else "")


def _null_is_absent(model: type[Any] | None, path: str) -> bool:
    """Whether the top-level field at `path` defaults to None (null = not given)."""
    if model is None or not isinstance(model, type) or not issubclass(model, msgspec.Struct):
        return False
    top = re.match(r"\.(\w+)$", path)
    if top is None:
        return False
    for info in msgspec.structs.fields(model):
        if info.encode_name == top.group(1):
            return info.default is None
    return False


def translate(message: str, model: type[Any] | None = None) -> str:
    """msgspec's validation message in hive's words (`model`: the Struct decoded)."""
    missing = _MISSING.match(message)
    if missing:
        prefix = _field_name(missing.group(2) or "")
        name = f"{prefix}.{missing.group(1)}" if prefix else missing.group(1)
        return f"'{name}' is required"
    expected = _EXPECTED.match(message)
    if expected:
        kind, bound, path = expected.group(1), expected.group(2).strip(), expected.group(3)
        if not path:
            return "Request body must be a JSON object" if kind == "object" else message
        name = _field_name(path)
        words = _kind_words(kind, offer_null=not _null_is_absent(model, "." + name))
        if bound:
            return f"'{name}' must be {words} {bound}"
        return f"'{name}' must be {words}"
    return message


def decode_model(raw: bytes, model: type[T]) -> T:
    """Parse JSON bytes into `model`; a refusal is a 400 RequestError in hive's words."""
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        raise RequestError(400, translate(str(exc), model)) from None
    except (msgspec.DecodeError, RecursionError):  # an unknown field nested 100k deep recursed
        raise RequestError(400, "Invalid JSON body") from None


async def read_model(request: Request, model: type[T], *, optional: bool = False) -> T:
    """The request body as `model`. `optional`: an empty body reads as `{}`."""
    raw = await read_body(request)
    if not raw.strip():
        if optional:
            return decode_model(b"{}", model)
        raise RequestError(400, "Invalid JSON body")
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise RequestError(415, f"Unsupported content type {media!r}: send application/json")
    return decode_model(raw, model)
