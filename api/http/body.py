"""Reading JSON request bodies: size-capped, strictly parsed, with hive's error texts.

The body is streamed and abandoned as soon as it passes the limit, so a huge
upload is refused (413) without being held in memory. Every refusal is a
`RequestError` the route turns into `{"error": ...}`; nothing is appended.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from api.core.settings import MAX_BODY_BYTES
from api.http.responses import JSONResponse, error


class RequestError(Exception):
    """A client error: status code and hive-style body."""

    def __init__(self, status_code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.extra = extra

    def response(self) -> JSONResponse:
        return error(self.status_code, self.message, **self.extra)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestError(413, f"Request body larger than {limit} bytes")
        except ValueError:
            raise RequestError(400, "Invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"Request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(
    request: Request, *, optional: bool = False, limit: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The body as a JSON object. `optional`: an empty body reads as `{}` (hive's
    `POST /api/sessions` accepts no body)."""
    raw = await read_body(request, limit)
    if not raw.strip():
        if optional:
            return {}
        raise RequestError(400, "Invalid JSON body")
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise RequestError(415, f"Unsupported content type {media!r}: send application/json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "Invalid JSON body") from None
    if not isinstance(value, dict):
        raise RequestError(400, "Request body must be a JSON object")
    return value
