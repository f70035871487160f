"""hive 54fd8db's colony routes over the log.

- `GET /api/colonies/{colony_id}/sessions` (RS:2212-2246): the sessions bound to the
  colony, newest session id first, with `has_messages`; hive's live overlay. An
  unknown colony is an empty list, never a 404.
- `GET /api/colonies/{colony_id}/active-session` (RS:2249-2260): the first of those
  rows with messages, without the overlay (so `cold` is true), or null.
- `POST /api/sessions/{id}/colony/resolve_missed` (RS:1527-1566): each valid decision
  is recorded (`trigger_missed_resolved`; `fire_latest` also `trigger_fired`).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.colony_ids import check_colony_id
from api.http.body import read_body
from api.http.contract import Body, documented
from api.http.responses import JSONResponse
from api.http.routing import path_session_id, sessions_of
from api.http.state import parts
from eventstore import NewEvent
from projections import views
from projections.errors import Invalid
from projections.session import SessionState
from projections.trigger_create import check_decisions, decide_resolve_missed, require_colony


def _colony_id(request: Request) -> str:
    return check_colony_id(str(request.path_params["colony_id"]))


def colony_rows(request: Request, colony_id: str, *, overlay: bool) -> list[dict[str, Any]]:
    states = sorted(
        (
            s
            for s in sessions_of(request).catalogue.sessions.values()
            if s.colony is not None and s.colony.colony_id == colony_id
        ),
        key=lambda s: s.session_id,
        reverse=True,
    )
    return [views.colony_row(s, overlay=overlay) for s in states]


@documented("Sessions bound to a colony, newest first (hive 54fd8db)", errors=(400,))
async def colony_sessions(request: Request) -> Response:
    rows = colony_rows(request, _colony_id(request), overlay=True)
    return JSONResponse({"sessions": rows})


@documented("The colony's first session with messages, or null", errors=(400,))
async def active_session(request: Request) -> Response:
    rows = colony_rows(request, _colony_id(request), overlay=False)
    first = next((row for row in rows if row["has_messages"]), None)
    return JSONResponse({"session": first})


class ResolveMissed(Body):
    """`{"decisions": {trigger_id: "fire_latest" | "skip" | "reschedule"}}`."""

    decisions: Any = None


@documented(
    "Record a decision per missed trigger (hive 54fd8db; nothing in hive drives it)",
    body=ResolveMissed,
    errors=(400, 404, 409, 413),
)
async def resolve_missed(request: Request) -> Response:
    """hive's order: live (404), colony (409), then the body (400s)."""
    session_id = path_session_id(request)
    service = sessions_of(request)
    require_colony(service.get(session_id), session_id)
    raw = await read_body(request)
    try:
        body = msgspec.json.decode(raw) if raw.strip() else None
    except (msgspec.DecodeError, RecursionError):  # deep nesting recursed: was a 500
        raise Invalid("invalid JSON body") from None
    if not body:
        raise Invalid("invalid JSON body")
    decisions = check_decisions(body)
    now = parts(request).clock.now()
    outcome: dict[str, dict[str, str]] = {"results": {}}

    def decide(state: SessionState | None) -> list[NewEvent]:
        results, events = decide_resolve_missed(state, session_id, decisions, now)
        outcome["results"] = results
        return events

    await service.execute(session_id, decide)
    return JSONResponse({"results": outcome["results"]})


routes = [
    Route("/api/colonies/{colony_id}/sessions", colony_sessions, methods=["GET"]),
    Route("/api/colonies/{colony_id}/active-session", active_session, methods=["GET"]),
    Route("/api/sessions/{session_id}/colony/resolve_missed", resolve_missed, methods=["POST"]),
]
