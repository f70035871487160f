"""The composition root: the one place where hivelog's parts are built and wired.

Parts start in dependency order (store -> session service -> node liveness ->
scheduler -> SSE hub -> metrics) and stop in reverse. Routes receive them as one
typed `Parts` object (`api.http.state`); nothing probes for optional parts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from api.core.clock import Clock, RealClock
from api.core.nodes import NodeLiveness
from api.core.scheduler import Scheduler
from api.core.service import SessionService
from api.core.settings import Settings
from api.http import (
    agents,
    colonies_routes,
    health,
    history,
    live,
    metrics,
    openapi,
    runtime,
    sessions,
    sse,
    triggers,
    webhooks,
)
from api.http.errors import EXCEPTION_HANDLERS
from api.http.middleware import middleware_for
from api.http.state import Parts
from eventstore import open_store

# Order matters: routes match first-come (/api/sessions/live and /api/sessions/history
# before /api/sessions/{id}).
ROUTES: list[BaseRoute] = [
    *health.routes,
    *metrics.routes,
    *live.live_routes,
    *sessions.routes,
    *live.routes,
    *colonies_routes.routes,
    *runtime.routes,
    *agents.routes,
    *triggers.routes,
    *webhooks.routes,
    *history.routes,
    *sse.routes,
    *openapi.routes,
]


def create_app(settings: Settings, clock: Clock | None = None) -> Starlette:
    """The ASGI app; `clock` is injectable for tests (the real clock otherwise)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            store = await open_store(settings.db_url)
            stack.push_async_callback(store.close)

            service = SessionService(store)
            await service.start()
            stack.push_async_callback(service.stop)

            node = NodeLiveness(store, settings.node_id, settings.node_ttl)
            await node.start()
            node.start_adopting(service)
            stack.push_async_callback(node.stop)

            scheduler_clock = clock or RealClock()
            several_nodes = settings.db_url.startswith(("postgresql://", "postgres://"))
            scheduler = Scheduler(
                service,
                scheduler_clock,
                node_id=settings.node_id,
                leases=store.leases if several_nodes else None,
            )
            await scheduler.start()
            stack.push_async_callback(scheduler.stop)

            hub = sse.hub_from_env(store)
            await hub.start()
            stack.push_async_callback(hub.stop)
            stack.callback(sse.chain_exit_signals(hub))

            registry = metrics.Metrics(store, service, hub)
            store.on_commit.append(registry.on_commit)
            stack.callback(store.on_commit.remove, registry.on_commit)

            app.state.parts = Parts(
                settings=settings,
                store=store,
                clock=scheduler_clock,
                sessions=service,
                node=node,
                scheduler=scheduler,
                hub=hub,
                metrics=registry,
            )
            yield

    return Starlette(
        routes=ROUTES,
        middleware=middleware_for(settings),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
