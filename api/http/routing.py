"""Helpers shared by the session and agent routes: path ids and the session service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from api.core.service import SessionService
from api.http.body import RequestError
from api.http.state import parts
from projections.ids import is_valid_id

log = logging.getLogger("hivelog.api")

Handler = Callable[[Request], Awaitable[Response]]


def path_session_id(request: Request) -> str:
    """The `{session_id}` path parameter, refused (400) unless it is a valid id."""
    session_id = str(request.path_params["session_id"])
    if not is_valid_id(session_id):
        raise RequestError(400, f"Invalid session id '{session_id[:200]}'")
    return session_id


def sessions_of(request: Request) -> SessionService:
    return parts(request).sessions
