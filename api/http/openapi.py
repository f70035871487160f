"""GET /openapi.json: an OpenAPI 3.1 document GENERATED from the app's routes.

Nothing here is written per route. For each route: the path and its path
parameters come from Starlette's route (`{path:path}` becomes `{path}`); the
methods from the route; summary, query and header parameters, request body,
success status, media type and response shape from the handler's `@documented`
annotation (api.http.contract); component schemas from the msgspec Structs
themselves (the same objects that validate request bodies, and the response
shapes in api.http.shapes). So the validator and the document cannot drift.

Every operation also answers hive's `{"error": ...}` on refusal: the codes the
annotation lists, and `4XX` for the rest (401 token, 404/405 routing, 413 size,
415 content type). Any of them may also answer 503: the store refused (disk full,
I/O error, database unreachable: hive's JSON error with Retry-After), or uvicorn's
connection limit (`--max-connections`: plain text, before the app). Response objects
allow extra keys; unknown request keys are accepted and ignored (the schema does not
forbid them).

The token is a security requirement of the document (`hiveToken`, or none: a server
started without a token needs none), lifted (`security: []`) on the operations
TokenMiddleware lets through, from the same list it uses: generated clients send
`X-Hive-Token` only where a requirement names it.
"""

from __future__ import annotations

import http
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson
from starlette.convertors import Convertor, FloatConvertor, IntegerConvertor, UUIDConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.core.version import hivelog_version
from api.http import shapes
from api.http.contract import Doc, doc_of, documented
from api.http.middleware import PUBLIC_PATHS, PUBLIC_PREFIXES

Schema = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{name}"
_CONVERTOR = re.compile(r"{(\w+)(?::\w+)?}")
ANY_OBJECT: Schema = {"type": "object"}
DESCRIPTION = (
    "Event-sourced sessions and triggers for hive. With a token configured, every path "
    "except /api/health, /openapi.json and webhooks needs the X-Hive-Token header (401 "
    "otherwise). Unknown request-body keys are accepted and ignored."
)


def openapi_path(route_path: str) -> str:
    """Starlette's `/api/webhooks/{path:path}` as OpenAPI's `/api/webhooks/{path}`."""
    return _CONVERTOR.sub(r"{\1}", route_path)


def _convertor_schema(convertor: Convertor[Any]) -> Schema:
    if isinstance(convertor, IntegerConvertor):
        return {"type": "integer", "minimum": 0}
    if isinstance(convertor, FloatConvertor):
        return {"type": "number", "minimum": 0}
    if isinstance(convertor, UUIDConvertor):
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}


def is_public(route_path: str) -> bool:
    """Whether TokenMiddleware lets this route through without the token (its own rule,
    on the route's template: `/api/webhooks/{path:path}` is under `/api/webhooks/`)."""
    return route_path in PUBLIC_PATHS or route_path.startswith(PUBLIC_PREFIXES)


def fallback_doc(endpoint: Callable[..., Any]) -> Doc:
    """A route nobody annotated: its docstring's first line, any JSON object back.
    (tests/api/http/test_openapi.py fails on it; this keeps the document whole meanwhile.)"""
    summary = (endpoint.__doc__ or endpoint.__name__).strip().splitlines()[0]
    return Doc(summary)


class _Schemas:
    """Collects the types an operation mentions; renders them in one msgspec pass,
    so shared Structs become one component each."""

    def __init__(self) -> None:
        self.types: list[Any] = []

    def add(self, kind: Any) -> int:
        self.types.append(kind)
        return len(self.types) - 1

    def render(self) -> tuple[list[Schema], Schema]:
        schemas, components = msgspec.json.schema_components(self.types, ref_template=REF_TEMPLATE)
        return list(schemas), dict(components)


def _json(media_type: str, schema: Any, description: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _unavailable(error_ref: Schema) -> Schema:
    """The 503 any operation may answer (see the module docstring)."""
    return {
        "description": "Service Unavailable: storage unavailable (retry after Retry-After) "
        "or too many connections",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {
            "application/json": {"schema": error_ref},
            "text/plain": {"schema": {"type": "string"}},
        },
    }


def _unique(name: str, method: str, methods: list[str]) -> str:
    """The handler's name; `receive_post` where one handler serves several methods."""
    return name if len(methods) == 1 else f"{name}_{method}"


def build_document(routes: Sequence[BaseRoute]) -> Schema:
    """The whole document for `routes` (Route objects; others are not served here)."""
    schemas = _Schemas()
    error_index = schemas.add(shapes.Error)
    # (path, method, operation id, doc, path params, slots, public)
    pending: list[tuple[str, str, str, Doc, list[Schema], dict[str, Any], bool]] = []
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue  # the console's static files are pages, not API
        doc = doc_of(route.endpoint) or fallback_doc(route.endpoint)
        path = openapi_path(route.path)
        path_params = [
            {"name": name, "in": "path", "required": True, "schema": _convertor_schema(conv)}
            for name, conv in route.param_convertors.items()
        ]
        slots: dict[str, Any] = {
            "body": schemas.add(doc.body) if doc.body is not None else None,
            "response": (schemas.add(doc.response) if doc.response is not None else None),
            "query": {name: schemas.add(kind) for name, kind in doc.query.items()},
            "headers": {name: schemas.add(kind) for name, kind in doc.headers.items()},
        }
        methods = sorted(m.lower() for m in route.methods or () if m != "HEAD")  # GET adds HEAD
        name = getattr(route.endpoint, "__name__", "operation")
        public = is_public(route.path)
        for method in methods:
            operation_id = _unique(name, method, methods)
            pending.append((path, method, operation_id, doc, path_params, slots, public))

    rendered, components = schemas.render()
    error_ref = rendered[error_index]
    paths: dict[str, dict[str, Schema]] = {}
    for path, method, operation_id, doc, path_params, slots, public in pending:
        parameters = list(path_params)
        parameters += [
            {"name": n, "in": "query", "required": False, "schema": rendered[i]}
            for n, i in slots["query"].items()
        ]
        parameters += [
            {"name": n, "in": "header", "required": False, "schema": rendered[i]}
            for n, i in slots["headers"].items()
        ]
        success = ANY_OBJECT if slots["response"] is None else rendered[slots["response"]]
        responses: dict[str, Schema] = {
            str(code): _json(doc.media_type, success, http.HTTPStatus(code).phrase)
            for code in (doc.status, *doc.also)
        }
        for code in doc.errors:
            responses[str(code)] = _json(
                "application/json", error_ref, http.HTTPStatus(code).phrase
            )
        responses.setdefault("503", _unavailable(error_ref))  # unless listed with its own body
        responses["4XX"] = _json("application/json", error_ref, "refused; nothing was appended")
        operation: Schema = {
            "summary": doc.summary,
            "operationId": operation_id,
            "responses": responses,
        }
        if parameters:
            operation["parameters"] = parameters
        if public:
            operation["security"] = []  # reachable without the token
        if slots["body"] is not None:
            operation["requestBody"] = {
                "required": doc.body_required,
                "content": {"application/json": {"schema": rendered[slots["body"]]}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "hivelog", "version": hivelog_version(), "description": DESCRIPTION},
        "paths": paths,
        # with a token configured (`hivelog serve --token`) every other operation needs
        # it; without one, none does (`{}`: the alternative of no requirement)
        "security": [{"hiveToken": []}, {}],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "hiveToken": {"type": "apiKey", "in": "header", "name": "X-Hive-Token"}
            },
        },
    }


_ENCODED: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


@documented("This document, generated from the app's routes")
async def openapi_json(request: Request) -> Response:
    """Built from `request.app.routes` on the first request, then kept per app."""
    app = request.app
    encoded = _ENCODED.get(app)
    if encoded is None:
        encoded = _ENCODED[app] = orjson.dumps(build_document(app.routes))
    return Response(encoded, media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
