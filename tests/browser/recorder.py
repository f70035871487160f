"""Every `/api/` request the page makes, with its status, from playwright's network events.

Playwright reports what the DevTools `Network` domain sees: `response` when the
headers arrive (an SSE stream counts as answered then), `requestfailed` when the
browser gave up or the page went away. A request with neither by the end of a test
never completed: that is a stall.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.browser.harness import template

# Every browser run's request table, repeated in the terminal summary (conftest). Kept
# here because pytest imports conftest.py under a second module name.
TABLES: list[str] = []

# hive's session routes (both contracts, hive-contract.md §3 and hive-head-contract.md §1):
# the app's own calls to these must never answer 4xx or 5xx.
SESSION_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/sessions"),
        ("GET", "/api/sessions"),
        ("GET", "/api/sessions/live"),
        ("GET", "/api/sessions/history"),
        ("DELETE", "/api/sessions/history/{sid}"),
        ("GET", "/api/sessions/{sid}"),
        ("DELETE", "/api/sessions/{sid}"),
        ("GET", "/api/sessions/{sid}/snapshot"),
        ("POST", "/api/sessions/{sid}/presence"),
        ("POST", "/api/sessions/{sid}/colony"),
        ("DELETE", "/api/sessions/{sid}/colony"),
        ("POST", "/api/sessions/{sid}/colony/resolve_missed"),
        ("POST", "/api/sessions/{sid}/dismiss-colony-pivot"),
        ("GET", "/api/sessions/{sid}/stats"),
        ("GET", "/api/sessions/{sid}/entry-points"),
        ("GET", "/api/sessions/{sid}/colonies"),
        ("GET", "/api/sessions/{sid}/triggers"),
        ("POST", "/api/sessions/{sid}/triggers"),
        ("PATCH", "/api/sessions/{sid}/triggers/{tid}"),
        ("POST", "/api/sessions/{sid}/triggers/{tid}/activate"),
        ("POST", "/api/sessions/{sid}/triggers/{tid}/deactivate"),
        ("POST", "/api/sessions/{sid}/triggers/{tid}/run"),
        ("GET", "/api/sessions/{sid}/events/history"),
        ("GET", "/api/sessions/{sid}/events"),
        ("GET", "/api/colonies/{c}/sessions"),
        ("GET", "/api/colonies/{c}/active-session"),
    }
)


@dataclass
class Call:
    method: str
    url: str
    path: str  # template
    body: str | None = None
    status: int | None = None
    failure: str | None = None


@dataclass
class RequestLog:
    """Attach to a playwright page with `attach(page)`; read `calls` and `problems()`."""

    origin: str
    calls: list[Call] = field(default_factory=list)
    _open: dict[int, Call] = field(default_factory=dict)

    def attach(self, page: Any) -> None:
        page.on("request", self._request)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _key(self, request: Any) -> int:
        return id(request)

    def _is_api(self, url: str) -> bool:
        return url.startswith(self.origin + "/api/")

    def _request(self, request: Any) -> None:
        url = str(request.url)
        if not self._is_api(url):
            return
        path = url[len(self.origin) :]
        try:
            body = request.post_data
        except Exception:  # a binary body (uploads): not needed here
            body = None
        call = Call(str(request.method), path, template(path), body)
        self.calls.append(call)
        self._open[self._key(request)] = call

    def _response(self, response: Any) -> None:
        call = self._open.get(self._key(response.request))
        if call is not None:
            call.status = int(response.status)

    def _failed(self, request: Any) -> None:
        call = self._open.get(self._key(request))
        if call is not None:
            call.failure = str(request.failure or "failed")

    def table(self) -> str:
        """method, path template, status, count: one line per distinct combination."""
        counts = Counter(
            (c.method, c.path, str(c.status) if c.status is not None else (c.failure or "pending"))
            for c in self.calls
        )
        rows = sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2]))
        width = max([len(p) for (_, p, _), _ in rows] + [4])
        lines = [f"{'method':7} {'path':{width}} {'status':>16} {'count':>5}"]
        lines += [f"{m:7} {p:{width}} {s:>16} {n:>5}" for (m, p, s), n in rows]
        return "\n".join(lines)

    def problems(self) -> list[str]:
        """5xx anywhere, 4xx on a session route, failures, and requests never answered."""
        found = []
        for c in self.calls:
            where = f"{c.method} {c.url}"
            if c.status is not None and c.status >= 500:
                found.append(f"{where} answered {c.status}")
            elif c.status is not None and c.status >= 400 and (c.method, c.path) in SESSION_ROUTES:
                found.append(f"{where} (session route) answered {c.status}")
            elif c.status is None and c.failure is None:
                found.append(f"{where} never completed")
            elif c.status is None and c.failure is not None and "ERR_ABORTED" not in c.failure:
                found.append(f"{where} failed: {c.failure}")
        return found

    def count(self, method: str, path: str, status: int | None = None) -> int:
        return sum(
            1
            for c in self.calls
            if c.method == method and c.path == path and (status is None or c.status == status)
        )

    def bodies(self, method: str, path: str) -> list[str]:
        """Request bodies the page sent on this route (for what the app asked for)."""
        return [c.body or "" for c in self.calls if c.method == method and c.path == path]

    def statuses(self, method: str, pattern: str) -> list[int | None]:
        rx = re.compile(pattern)
        return [c.status for c in self.calls if c.method == method and rx.search(c.path)]
