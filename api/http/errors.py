"""One map from errors to responses: every refusal is hive's `{"error": ...}` body.

Domain errors carry no HTTP status; their class decides it here. Starlette's own
404 (no route) and 405 (wrong method, with `Allow`) answer JSON like the rest.
Anything else is the ErrorMiddleware's 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.core.incidents import RETRY_AFTER_SECONDS
from api.http.body import RequestError
from api.http.responses import error
from api.http.state import parts
from eventstore import StoreUnavailable
from projections.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

DOMAIN_STATUS: Mapping[type[DomainError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


def status_of(exc: DomainError) -> int:
    for kind in type(exc).__mro__:
        status = DOMAIN_STATUS.get(kind)
        if status is not None:
            return status
    return 400


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error(status_of(exc), exc.message, **exc.extra)


async def request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return exc.response()


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (unknown path, wrong method) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    response = error(exc.status_code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


READS = frozenset({"GET", "HEAD"})


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """Disk full, I/O error, database unreachable: 503 with Retry-After, logged once
    per incident (by `StoreIncidents`), never a traceback per request."""
    assert isinstance(exc, StoreUnavailable)
    if request.method not in READS:
        # a failed read is no refused write: counted as one, it kept /api/health
        # "degraded" after the store came back, until the next append
        parts(request).supervisor.incidents.refused_write(exc)
    response = error(
        503,
        "Storage unavailable (disk full, I/O error or database unreachable); try again later",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


Handler = Callable[[Request, Exception], Awaitable[Response]]

EXCEPTION_HANDLERS: dict[Any, Handler] = {
    DomainError: domain_error,
    RequestError: request_error,
    HTTPException: http_error,
    StoreUnavailable: store_unavailable,
}
