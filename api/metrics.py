"""GET /metrics: Prometheus text format, from a registry owned by the app.

Write-side figures come from the store's group-commit hook (`on_commit`, called
once per committed batch with the number of appends in it and the commit's
duration), so counting costs nothing per request. SSE clients and projection lag
are read when scraped. A backend without the hook reports no write figures.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)


class Metrics:
    """The service's Prometheus metrics."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.appends = Counter(
            "hivelog_appends",
            "Appends committed (each one expected-version check; may hold many events).",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "hivelog_append_commit_seconds",
            "Duration of each group commit (the durable part of every append in it).",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "hivelog_group_commit_batch_size",
            "Appends committed together in one transaction (one fsync).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "hivelog_sse_clients", "Open Server-Sent Events connections.", registry=self.registry
        )
        self.sse_clients.set_function(self._sse_clients)
        self.head_position = Gauge(
            "hivelog_log_head_position",
            "Global position of the newest committed event.",
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "hivelog_projection_lag_events",
            "Committed events the sessions projection has not folded yet.",
            registry=self.registry,
        )

    def on_commit(self, appends: int, seconds: float) -> None:
        self.appends.inc(appends)
        self.commit_seconds.observe(seconds)
        self.batch_size.observe(appends)

    def _sse_clients(self) -> float:
        hub = getattr(self.app.state, "sse_hub", None)
        return float(hub.client_count) if hub is not None else 0.0

    async def render(self) -> bytes:
        head = await self.app.state.store.head_position()
        self.head_position.set(head)
        sessions = getattr(self.app.state, "sessions", None)
        position = getattr(sessions, "position", None)
        if isinstance(position, int):
            self.projection_lag.set(max(head - position, 0))
        data: bytes = generate_latest(self.registry)
        return data


async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(await registry.render(), media_type=CONTENT_TYPE_LATEST)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    state = Metrics(app)
    app.state.metrics = state
    hooks: list[Callable[[int, float], None]] | None = getattr(app.state.store, "on_commit", None)
    if hooks is not None:
        hooks.append(state.on_commit)
    try:
        yield
    finally:
        if hooks is not None and state.on_commit in hooks:
            hooks.remove(state.on_commit)


routes = [Route("/metrics", metrics, methods=["GET"])]
