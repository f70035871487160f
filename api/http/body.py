"""Request bodies at the HTTP edge: the client-error type and the raw bytes.

The body-size limit is checked in ONE place, BodyLimitMiddleware (413 from
Content-Length at once, or as soon as a streamed body passes the cap, so an
oversized upload is never held in memory); a route reading past it sees a
disconnect and its answer is dropped. JSON bodies are parsed into typed models
by `api.http.contract.read_model`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

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


async def read_body(request: Request) -> bytes:
    """The whole body (already capped by BodyLimitMiddleware)."""
    return await request.body()
