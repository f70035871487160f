"""GET /api/health: liveness plus the log head, so probes see the store answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api.http.responses import JSONResponse
from api.http.state import parts


async def health(request: Request) -> JSONResponse:
    the_parts = parts(request)
    body: dict[str, object] = {
        "status": "ok",
        "head_position": await the_parts.store.head_position(),
        # the hash chain's newest link: write it down to prove later nothing before it changed
        "chain_head": (await the_parts.store.chain_head()).to_dict(),
    }
    # hive's fields: live sessions, and those with a colony loaded
    sessions = the_parts.sessions
    live = [sessions.get(sid) for sid in sessions.live_ids()]
    body["sessions"] = len(live)
    body["agents_loaded"] = sum(1 for s in live if s is not None and s.colony is not None)
    return JSONResponse(body)


routes = [Route("/api/health", health, methods=["GET"])]
