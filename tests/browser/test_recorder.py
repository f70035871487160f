"""The browser tests' judge: path templates and which recorded calls count as problems
(pure; no browser needed)."""

from __future__ import annotations

from typing import Any

from tests.browser.harness import template
from tests.browser.recorder import RequestLog

ORIGIN = "http://127.0.0.1:9"
SID = "session_20260601_100000_abcdef01"


class FakeRequest:
    def __init__(self, method: str, path: str, body: str | None = None) -> None:
        self.method = method
        self.url = ORIGIN + path
        self.post_data = body
        self.failure: str | None = None


class FakeResponse:
    def __init__(self, request: FakeRequest, status: int) -> None:
        self.request = request
        self.status = status


def test_templates_name_ids_and_drop_queries() -> None:
    assert template(f"/api/sessions/{SID}/events/history?limit=500") == (
        "/api/sessions/{sid}/events/history"
    )
    assert template("/api/sessions/live") == "/api/sessions/live"
    assert template("/api/sessions/history") == "/api/sessions/history"
    assert template(f"/api/sessions/history/{SID}") == "/api/sessions/history/{sid}"
    assert template(f"/api/sessions/{SID}/triggers/daily-digest/run") == (
        "/api/sessions/{sid}/triggers/{tid}/run"
    )
    assert template("/api/sessions/other-id/snapshot") == "/api/sessions/{sid}/snapshot"
    assert template("/api/colonies/demo_colony/sessions") == "/api/colonies/{c}/sessions"
    assert template("/api/queen/profiles") == "/api/queen/profiles"
    assert template("/api/queen/queen_growth/profile") == "/api/queen/{q}/profile"
    assert template("/api/webhooks/a/b") == "/api/webhooks/{path}"


def _log(*calls: tuple[str, str, Any]) -> RequestLog:
    """Each call: (method, path, status int | 'failed:<why>' | None for never answered)."""
    log = RequestLog(ORIGIN)
    for method, path, outcome in calls:
        request = FakeRequest(method, path)
        log._request(request)
        if isinstance(outcome, int):
            log._response(FakeResponse(request, outcome))
        elif isinstance(outcome, str):
            request.failure = outcome
            log._failed(request)
    return log


def test_problems_are_5xx_session_4xx_failures_and_stalls() -> None:
    log = _log(
        ("GET", "/api/sessions", 200),
        ("GET", "/api/skills", 404),  # not a session route: the app copes
        (
            "GET",
            f"/api/sessions/{SID}/events",
            "net::ERR_ABORTED",
        ),  # page moved on
        ("GET", "/api/discover", 500),
        ("GET", "/api/sessions/live", 404),
        ("POST", f"/api/sessions/{SID}/triggers", None),
        ("GET", "/api/config/llm", "net::ERR_CONNECTION_REFUSED"),
    )
    problems = log.problems()
    assert problems == [
        "GET /api/discover answered 500",
        "GET /api/sessions/live (session route) answered 404",
        f"POST /api/sessions/{SID}/triggers never completed",
        "GET /api/config/llm failed: net::ERR_CONNECTION_REFUSED",
    ]


def test_table_counts_each_method_path_status() -> None:
    log = _log(
        ("GET", f"/api/sessions/{SID}/events/history?limit=500", 200),
        ("GET", f"/api/sessions/{SID}/events/history?before_offset=2", 200),
        ("GET", "/api/sessions/live", 200),
    )
    lines = log.table().splitlines()
    assert lines[0].split() == ["method", "path", "status", "count"]
    assert ["GET", "/api/sessions/{sid}/events/history", "200", "2"] in [
        line.split() for line in lines
    ]
    assert log.count("GET", "/api/sessions/live", 200) == 1
