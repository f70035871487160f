"""HTTP request metrics: a count and a latency histogram per method, route template
and status, recorded by a small pure-ASGI middleware (outermost, so refusals by the
token check, the size cap or routing are counted too).

Labels use the route's template (`/api/sessions/{session_id}`), never the raw path,
so the number of series stays bounded whatever clients send; a path no route
matches is `<unmatched>`, an unusual method `OTHER`. Latency runs from the
request's arrival until the app returns: for an event stream, how long it stayed
open. Labelled children are cached (about 7 µs a request in all).
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"
# Any other method (clients may send any token) is counted as OTHER: series stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_CONVERTOR = re.compile(r"{(\w+):\w+}")


class RequestMetrics:
    """The request counters, in a registry of their own (built with the app, before
    the lifespan; /metrics renders it beside the service's)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "hivelog_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels,
            registry=self.registry,
        )
        self.seconds = Histogram(
            "hivelog_http_request_duration_seconds",
            "Time from a request's arrival until the app returned (streams: their lifetime).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # labelled children, looked up once per series (prometheus' labels() is slow)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.seconds.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


@functools.lru_cache(maxsize=1024)
def _template(path: str) -> str:
    return _CONVERTOR.sub(r"{\1}", path)


def template_of(route: BaseRoute) -> str:
    path = route.path if isinstance(route, Route) else getattr(route, "path", UNMATCHED)
    return _template(str(path))


def route_template(scope: Scope) -> str:
    """The template of the route that served (or would serve) this request."""
    route = scope.get("route")
    if isinstance(route, BaseRoute):
        return template_of(route)
    app = scope.get("app")
    # Refused before routing (401, 413): find the route it was meant for.
    for candidate in getattr(app, "routes", ()):
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return template_of(candidate)
    return UNMATCHED


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # no answer started (the client went away first)

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.observe(method, route_template(scope), status, elapsed)
