"""GET /api/health: each component's state, plus the log head, so probes see the store answer.

`status` is `ok` when every component is, else `degraded`; the answer is 503 when a
required component (the store, the session follower) is down, since then no
command can be acknowledged. hive's fields (`sessions`, `agents_loaded`) and
`head_position` stay at the top level.

Every store read the probe makes (the head and the chain head) runs under one
bound: a probe must answer, and a store that does not answer is what it is there
to report. When the store is down, `head_position` and `chain_head` are left out.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.routing import Route

from api.http import shapes
from api.http.contract import documented
from api.http.responses import JSONResponse
from api.http.state import Parts, parts
from eventstore import ChainHead

STORE_PROBE_SECONDS = 2.0  # a store that does not answer a head read in this is down


Heads = tuple[int, ChainHead]


async def _read_heads(the_parts: Parts) -> Heads:
    store = the_parts.store
    return await store.head_position(), await store.chain_head()


async def store_component(the_parts: Parts) -> tuple[dict[str, object], Heads | None]:
    """The store's state and its heads (down: they cannot be read within
    STORE_PROBE_SECONDS; degraded: writes are refused)."""
    try:
        async with asyncio.timeout(STORE_PROBE_SECONDS):
            heads = await _read_heads(the_parts)
    except TimeoutError:
        reason = f"reading the log head failed: no answer within {STORE_PROBE_SECONDS:g} s"
        return {"status": "down", "reason": reason, "required": True}, None
    except Exception as exc:
        reason = f"reading the log head failed: {type(exc).__name__}: {exc}"
        return {"status": "down", "reason": reason, "required": True}, None
    incidents = the_parts.supervisor.incidents
    if incidents.active:
        reason = f"writes refused ({incidents.refused} so far): {incidents.reason}"
        return {"status": "degraded", "reason": reason, "required": True}, heads
    return {"status": "ok", "reason": None, "required": True}, heads


# 503 carries the same body (the components say what is down), so it is documented with it.
@documented("Liveness and the log head", response=shapes.Health, also=(503,))
async def health(request: Request) -> JSONResponse:
    the_parts = parts(request)
    store, heads = await store_component(the_parts)
    components = {"store": store, **the_parts.supervisor.report()}
    down = [name for name, c in components.items() if c.get("required") and c["status"] == "down"]
    healthy = all(c["status"] == "ok" for c in components.values())
    body: dict[str, object] = {"status": "ok" if healthy else "degraded"}
    if heads is not None:
        body["head_position"] = heads[0]
        # the hash chain's newest link: write it down to prove later nothing before it changed
        body["chain_head"] = heads[1].to_dict()
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
