"""GET /metrics: Prometheus text format, from a registry owned by the app.

Write-side figures come from the store's group-commit hook (`on_commit`, called
once per committed batch with the number of appends in it and the commit's
duration), so counting costs nothing per request. SSE clients and projection lag
are read when scraped. Both backends call the hook.

The one store read a scrape makes (the log head) is bounded: when the store does not
answer, the head and lag gauges read NaN (unknown) and everything else is still
served, since a stuck store is when an operator most needs the other figures.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.service import SessionService
from api.http.contract import documented
from api.http.request_metrics import RequestMetrics
from api.http.state import parts
from eventstore import EventStore

if TYPE_CHECKING:
    from api.http.sse import Hub

log = logging.getLogger("hivelog.metrics")

HEAD_READ_SECONDS = 2.0  # a scrape does not wait longer than this for the log head
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)


class Metrics:
    """The service's Prometheus metrics."""

    def __init__(
        self,
        store: EventStore,
        sessions: SessionService,
        hub: Hub,
        requests: RequestMetrics | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.hub = hub
        self.requests = requests  # HTTP request counts, recorded by their middleware
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
        return float(self.hub.client_count)

    async def render(self) -> bytes:
        try:
            async with asyncio.timeout(HEAD_READ_SECONDS):
                head = await self.store.head_position()
        except Exception as exc:  # the store is down or stuck: unknown, not a 500 or a hang
            log.debug("metrics: log head unreadable: %s: %s", type(exc).__name__, exc)
            self.head_position.set(math.nan)
            self.projection_lag.set(math.nan)
        else:
            self.head_position.set(head)
            self.projection_lag.set(max(head - self.sessions.position, 0))
        data: bytes = generate_latest(self.registry)
        if self.requests is not None:
            data += self.requests.render()
        return data


@documented("Prometheus metrics", response=str, media_type="text/plain")
async def metrics(request: Request) -> Response:
    registry = parts(request).metrics
    return Response(await registry.render(), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
