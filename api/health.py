"""GET /api/health: liveness plus the log head, so probes see the store answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api.responses import JSONResponse


async def health(request: Request) -> JSONResponse:
    store = request.app.state.store
    return JSONResponse({"status": "ok", "head_position": await store.head_position()})


routes = [Route("/api/health", health, methods=["GET"])]
