"""GET /api/health: each component's state, plus the log head, so probes see the store answer.

`status` is `ok` when every component is, else `degraded`; the answer is 503 when a
required component (the store, the session follower) is down, since then no
command can be acknowledged. hive's fields (`sessions`, `agents_loaded`) and
`head_position` stay at the top level.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.routing import Route

from api.http import shapes
from api.http.contract import documented
from api.http.responses import JSONResponse
from api.http.state import Parts, parts

STORE_PROBE_SECONDS = 2.0  # a store that does not answer a head read in this is down


async def store_component(the_parts: Parts) -> tuple[dict[str, object], int | None]:
    """The store's state (down: the head cannot be read; degraded: writes are refused)."""
    try:
        async with asyncio.timeout(STORE_PROBE_SECONDS):
            head = await the_parts.store.head_position()
    except Exception as exc:
        reason = f"reading the log head failed: {type(exc).__name__}: {exc}"
        return {"status": "down", "reason": reason, "required": True}, None
    incidents = the_parts.supervisor.incidents
    if incidents.active:
        reason = f"writes refused ({incidents.refused} so far): {incidents.reason}"
        return {"status": "degraded", "reason": reason, "required": True}, head
    return {"status": "ok", "reason": None, "required": True}, head


@documented("Liveness and the log head", response=shapes.Health)
async def health(request: Request) -> JSONResponse:
    the_parts = parts(request)
    store, head = await store_component(the_parts)
    components = {"store": store, **the_parts.supervisor.report()}
    down = [name for name, c in components.items() if c.get("required") and c["status"] == "down"]
    healthy = all(c["status"] == "ok" for c in components.values())
    body: dict[str, object] = {
        "status": "ok" if healthy else "degraded",
        "head_position": head,
        # the hash chain's newest link: write it down to prove later nothing before it changed
        "chain_head": (await the_parts.store.chain_head()).to_dict(),
    }
    # hive's fields: live sessions, and those with a colony loaded
    sessions = the_parts.sessions
    live = [sessions.get(sid) for sid in sessions.live_ids()]
    body["sessions"] = len(live)
    body["agents_loaded"] = sum(1 for s in live if s is not None and s.colony is not None)
    body["components"] = components
    if down:
        body["down"] = down
    return JSONResponse(body, status_code=503 if down else 200)


routes = [Route("/api/health", health, methods=["GET"])]
