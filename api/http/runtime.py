"""hive 54fd8db routes that need hive's agent runtime or the desktop (class R).

A log service cannot run a queen, copy a transcript, or hold uploaded files, so
each of these gives the honest answer the contract suggests, never a fake
success: hive's own "nothing pending" where hive has one, 404 for a file that
is not here, and 501 with a clear `error` for work only hive's runtime does.
An unknown (or, where hive requires it, not live) session is a 404 first.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.http.contract import documented
from api.http.responses import JSONResponse, error
from api.http.routing import path_session_id, sessions_of
from projections.commands import require_live
from projections.errors import NotFound, session_not_found

NO_RUNTIME = "hivelog records sessions but runs no agent runtime"


def _known(request: Request) -> str:
    session_id = path_session_id(request)
    if sessions_of(request).get(session_id) is None:
        raise session_not_found(session_id)
    return session_id


def _live(request: Request) -> str:
    session_id = path_session_id(request)
    require_live(sessions_of(request).get(session_id), session_id)
    return session_id


@documented("No colony pivot is ever pending here (hive's own answer)", errors=(400, 404))
async def dismiss_colony_pivot(request: Request) -> Response:
    _live(request)
    return JSONResponse({"dismissed": False, "reason": "no_pending_pivot"})


@documented("Not implemented: the session folder lives with hive's runtime", errors=(404, 501))
async def report_bundle(request: Request) -> Response:
    _known(request)
    return error(
        501,
        f"report-bundle is not available: {NO_RUNTIME}; "
        "use `hivelog export --format hive --session <id>` for the session's events",
    )


@documented("Attachments are not stored here: always 404", errors=(400, 404))
async def attachment(request: Request) -> Response:
    _known(request)
    raise NotFound("attachment not found")


@documented("Not implemented: uploads belong to hive's runtime", errors=(404, 501))
async def upload_attachment(request: Request) -> Response:
    _known(request)
    return error(501, f"upload-attachment is not available: {NO_RUNTIME}")


@documented("Not implemented: the tool surface belongs to hive's runtime", errors=(404, 501))
async def live_tools(request: Request) -> Response:
    _live(request)
    return error(501, f"live_tools is not available: {NO_RUNTIME}")


S = "/api/sessions/{session_id}"
routes = [
    Route(S + "/dismiss-colony-pivot", dismiss_colony_pivot, methods=["POST"]),
    Route(S + "/report-bundle", report_bundle, methods=["POST"]),
    Route(S + "/attachment/{filename}", attachment, methods=["GET"]),
    Route(S + "/upload-attachment", upload_attachment, methods=["POST"]),
    Route(S + "/live_tools", live_tools, methods=["GET"]),
]
