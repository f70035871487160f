"""Helpers shared by the session and agent routes: error mapping and path ids."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from api.core.colonies import AgentPathError
from api.core.service import SessionService
from api.http.body import RequestError
from api.http.responses import error
from api.http.state import parts
from projections.errors import DomainError
from projections.ids import is_valid_id

log = logging.getLogger("hivelog.api")

Handler = Callable[[Request], Awaitable[Response]]


def handles_errors(handler: Handler) -> Handler:
    """Refusals become hive's `{"error": ...}` bodies; nothing has been appended."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except DomainError as exc:
            return error(exc.status_code, exc.message, **exc.extra)
        except RequestError as exc:
            return exc.response()
        except AgentPathError as exc:
            return error(400, str(exc))

    return wrapped


def path_session_id(request: Request) -> str:
    """The `{session_id}` path parameter, refused (400) unless it is a valid id."""
    session_id = str(request.path_params["session_id"])
    if not is_valid_id(session_id):
        raise RequestError(400, f"Invalid session id '{session_id[:200]}'")
    return session_id


def sessions_of(request: Request) -> SessionService:
    return parts(request).sessions
