"""Operator routes for the console: POST /api/admin/audit, GET /api/admin/nodes and
GET /api/admin/sessions.

The console's "audit" button calls this. It runs `tools.audit.audit` itself (the
same checks, the same report, never a subprocess) on its own read-only source, in
a worker thread with its own event loop: the audit is one long CPU-bound pass
over the log, and the service's loop must keep answering while it runs. One
audit at a time per process (a second request is a 409), since two passes
would only halve each other's speed. Protected by the token like every /api route.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from operator import attrgetter
from typing import Annotated, Any, Literal

from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.nodes import NODE_PREFIX
from api.http.body import RequestError
from api.http.contract import documented
from api.http.responses import JSONResponse, error
from api.http.routing import sessions_of
from api.http.state import parts
from projections.session import SessionState
from tools.audit import audit
from tools.audit_checks import CHECKS
from tools.audit_source import open_source
from tools.logio import UsageError

_running = threading.Lock()


async def _audit_report(url: str) -> dict[str, Any]:
    source = await open_source(url)
    try:
        report = await audit(source)
    finally:
        await source.close()
    return report.to_dict()


def run_audit(url: str) -> dict[str, Any]:
    """The audit report of the log at `url` (blocking: call it from a thread)."""
    started = time.perf_counter()
    body = asyncio.run(_audit_report(url))
    body["checks"] = list(CHECKS)
    body["seconds"] = round(time.perf_counter() - started, 3)
    return body


@documented("Run the same checks as `hivelog audit` on this log (one at a time)", errors=(409,))
async def run_audit_route(request: Request) -> Response:
    """POST /api/admin/audit: 200 with the report (`ok` false when faults were found)."""
    if not _running.acquire(blocking=False):
        return error(409, "An audit is already running")
    try:
        url = parts(request).settings.db_url
        try:
            body = await asyncio.to_thread(run_audit, url)
        except UsageError as exc:
            return error(409, f"Audit could not run: {exc}")
    finally:
        _running.release()
    return JSONResponse(body)


MAX_LEASES = 200


@documented("Live nodes (unexpired liveness leases) and the other leases held")
async def nodes_route(request: Request) -> Response:
    """GET /api/admin/nodes: the nodes whose liveness lease is unexpired, and every
    other lease held right now (timer claims), for the console's log view."""
    the_parts = parts(request)
    now = time.time()
    held = await the_parts.store.leases.holders("")
    nodes = [
        {
            "node_id": lease.owner,
            "fence": lease.fence,
            "expires_at": lease.expires_at,
            "expires_in": round(max(lease.expires_at - now, 0.0), 3),
        }
        for lease in held
        if lease.name.startswith(NODE_PREFIX)
    ]
    others = [
        {
            "name": lease.name,
            "owner": lease.owner,
            "fence": lease.fence,
            "expires_in": round(max(lease.expires_at - now, 0.0), 3),
        }
        for lease in held
        if not lease.name.startswith(NODE_PREFIX)
    ]
    body = {
        "this_node": the_parts.node.node_id,
        "ttl": the_parts.node.ttl,
        "nodes": nodes,
        "leases": others[:MAX_LEASES],
        "leases_total": len(others),
    }
    return JSONResponse(body)


SESSIONS_DEFAULT = 200
SESSIONS_MAX = 2000
QUERY_MAX_CHARS = 256
SESSIONS_QUERY: dict[str, Any] = {
    "q": Annotated[
        str,
        Meta(
            max_length=QUERY_MAX_CHARS,
            description="words that must all appear in the id, queen, colony, agent path "
            "or runner node (case-insensitive)",
        ),
    ],
    "state": Literal["", "live", "cold"],
    "limit": Annotated[int, Meta(ge=1, le=SESSIONS_MAX, description="rows, default 200")],
}


def session_row(state: SessionState) -> dict[str, Any]:
    """What the console's list shows of one session."""
    colony = state.colony
    return {
        "session_id": state.session_id,
        "live": state.live,
        "queen": state.queen_name or state.queen_id,
        "colony": (colony.colony_name or colony.colony_id) if colony else "",
        "agent_path": colony.agent_path if colony else "",
        "event_count": state.version,
        "last_active_at": state.last_active_at or state.loaded_at or None,
        "runner_node": state.runner_node or "",
    }


def _matches(state: SessionState, words: list[str], wanted: str) -> bool:
    if wanted and state.live != (wanted == "live"):
        return False
    if not words:
        return True
    row = session_row(state)
    keys = ("session_id", "queen", "colony", "agent_path", "runner_node")
    haystack = " ".join(str(row[k]) for k in keys).lower()
    return all(word in haystack for word in words)


def _sessions_query(request: Request) -> tuple[list[str], str, int]:
    """`q` as lower-case words, `state`, `limit`; 400 for anything out of bounds."""
    params = request.query_params
    q = params.get("q", "")
    if len(q) > QUERY_MAX_CHARS:
        raise RequestError(400, f"'q' must be at most {QUERY_MAX_CHARS} characters")
    state = params.get("state", "")
    if state not in ("", "live", "cold"):
        raise RequestError(400, "'state' must be live, cold or empty")
    text = params.get("limit", str(SESSIONS_DEFAULT))
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= SESSIONS_MAX):
        raise RequestError(400, f"'limit' must be an integer in [1, {SESSIONS_MAX}]")
    return q.lower().split(), state, int(text)


@documented(
    "Every session on record, live and cold, newest first: the console's list",
    errors=(400,),
    query=SESSIONS_QUERY,
)
async def sessions_route(request: Request) -> Response:
    """GET /api/admin/sessions: the first `limit` sessions matching `q` and `state`,
    with how many match and how many there are. (hive's /api/sessions/history lists
    only sessions without a colony, so the console showed a stopped colony session
    nowhere; and here the list is cut on the server, not sent whole every 3 s.)"""
    words, wanted, limit = _sessions_query(request)
    every = sessions_of(request).catalogue.sessions.values()
    matching = [state for state in every if _matches(state, words, wanted)]
    shown = heapq.nlargest(limit, matching, key=attrgetter("session_id"))
    body = {
        "sessions": [session_row(state) for state in shown],
        "matched": len(matching),
        "total": len(every),
    }
    return JSONResponse(body)


routes = [
    Route("/api/admin/audit", run_audit_route, methods=["POST"]),
    Route("/api/admin/nodes", nodes_route, methods=["GET"]),
    Route("/api/admin/sessions", sessions_route, methods=["GET"]),
]
