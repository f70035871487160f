"""The composition root: the one place where hivelog's parts are built and wired.

Parts start in dependency order (store -> node liveness -> session service ->
adoption -> scheduler -> SSE hub -> metrics) and stop in reverse. Routes receive them as one
typed `Parts` object (`api.http.state`); nothing probes for optional parts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from api.core.announce import Started, ready_line
from api.core.clock import Clock, RealClock
from api.core.nodes import NodeLiveness
from api.core.scheduler import Scheduler
from api.core.service import SessionService
from api.core.settings import Settings
from api.core.signals import on_exit_signal
from api.core.subscriptions import SubscriptionService
from api.core.supervisor import Supervisor
from api.core.version import hivelog_version
from api.http import (
    agents,
    colonies_routes,
    health,
    history,
    live,
    metrics,
    openapi,
    producers,
    runtime,
    sessions,
    sse,
    subscriptions,
    triggers,
    webhooks,
)
from api.http.admin import routes as admin_routes
from api.http.console import routes as console_routes
from api.http.errors import EXCEPTION_HANDLERS
from api.http.middleware import middleware_for
from api.http.request_metrics import RequestMetrics, RequestMetricsMiddleware
from api.http.state import Parts
from eventstore import open_store

log = logging.getLogger("hivelog")

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
    *producers.routes,
    *subscriptions.routes,
    *agents.routes,
    *triggers.routes,
    *webhooks.routes,
    *history.routes,
    *sse.routes,
    *openapi.routes,  # its document is generated from the app's routes when first asked
    *admin_routes,
    *console_routes,
]


def create_app(
    settings: Settings, clock: Clock | None = None, *, address: str | None = None
) -> Starlette:
    """The ASGI app; `clock` is injectable for tests (the real clock otherwise).
    `address` is where the server listens, for the start-up line."""
    requests = RequestMetrics()  # fed by the outermost middleware, shown by /metrics

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started_at = time.perf_counter()
        async with contextlib.AsyncExitStack() as stack:
            store = await open_store(settings.db_url)
            stack.push_async_callback(store.close)

            # every background loop below runs under it: logged, restarted, reported
            supervisor = Supervisor()
            store.on_commit.append(supervisor.incidents.on_commit)

            # The node id first: a second live process with this id stops here, before
            # folding the log, and the hold `hivelog serve` took on it is renewed from now
            # on (a fold longer than its ttl no longer lets another process in).
            node = NodeLiveness(store, settings.node_id, settings.node_ttl, supervisor)
            await node.start()
            stack.push_async_callback(node.stop)

            service = SessionService(store, supervisor=supervisor)
            await service.start()
            stack.push_async_callback(service.stop)
            node.start_adopting(service)
            stack.push_async_callback(node.stop_adopting)  # before the service stops

            scheduler_clock = clock or RealClock()
            several_nodes = settings.db_url.startswith(("postgresql://", "postgres://"))
            scheduler = Scheduler(
                service,
                scheduler_clock,
                node_id=settings.node_id,
                leases=store.leases if several_nodes else None,
                supervisor=supervisor,
                may_fire=lambda: not node.displaced,
            )
            await scheduler.start()
            stack.push_async_callback(scheduler.stop)
            stack.callback(on_exit_signal(scheduler.begin_stop))

            hub = sse.hub_from_env(store, supervisor)
            await hub.start()
            stack.push_async_callback(hub.stop)
            stack.callback(sse.chain_exit_signals(hub))

            registry = metrics.Metrics(store, service, hub, requests)
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
                subscriptions=SubscriptionService(store, scheduler_clock, closing=hub.closing),
                supervisor=supervisor,
            )
            log.info(
                ready_line(
                    Started(
                        version=hivelog_version(),
                        store_url=settings.db_url,
                        sessions=len(service.catalogue.sessions),
                        live_sessions=len(service.live_ids()),
                        events=await store.head_position(),
                        folded=service.events_folded_at_start,
                        ready_ms=(time.perf_counter() - started_at) * 1000,
                        token_required=bool(settings.token),
                        address=address,
                    )
                )
            )
            yield

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestMetricsMiddleware, metrics=requests),
            *middleware_for(settings),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
