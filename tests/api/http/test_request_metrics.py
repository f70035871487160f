"""HTTP request metrics over real HTTP: counted and timed by route template and status."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import running_server

TOKEN = {"X-Hive-Token": "t0k"}


def request_samples(text: str) -> dict[tuple[str, str, str, str], float]:
    """(sample name, method, route, status) -> value, for the request metrics."""
    out: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("hivelog_http_request"):
            continue
        for s in family.samples:
            if s.name.endswith("_bucket") or s.name.endswith("_created"):
                continue
            key = (s.name, s.labels["method"], s.labels["route"], s.labels["status"])
            out[key] = s.value
    return out


def test_requests_counted_by_route_template_and_status(db_url: str, tmp_path: Path) -> None:
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp_path)}
    with (
        running_server(db_url, tmp_path, ["--token", "t0k"], env=env) as srv,
        httpx.Client(base_url=srv.base_url, timeout=30) as c,
    ):
        created = [c.post("/api/sessions", json={}, headers=TOKEN) for _ in range(3)]
        assert all(r.status_code == 201 for r in created)
        sid = created[0].json()["session_id"]
        assert c.get(f"/api/sessions/{sid}", headers=TOKEN).status_code == 200
        assert c.get("/api/sessions/no-such-session", headers=TOKEN).status_code == 404
        assert c.get(f"/api/sessions/{sid}").status_code == 401  # no token: refused early
        assert c.get("/nowhere/at/all", headers=TOKEN).status_code == 404
        # a method outside the counted set (httptools refuses tokens it does not know,
        # such as BREW, with 400 before the app; PROPFIND it knows)
        assert c.request("PROPFIND", "/api/sessions", headers=TOKEN).status_code == 405
        text = c.get("/metrics", headers=TOKEN).text

    samples = request_samples(text)
    counts = {k[1:]: v for k, v in samples.items() if k[0] == "hivelog_http_requests_total"}
    assert counts[("POST", "/api/sessions", "201")] == 3
    assert counts[("GET", "/api/sessions/{session_id}", "200")] == 1
    assert counts[("GET", "/api/sessions/{session_id}", "404")] == 1
    assert counts[("GET", "/api/sessions/{session_id}", "401")] == 1
    assert counts[("GET", "<unmatched>", "404")] == 1
    assert counts[("OTHER", "/api/sessions", "405")] == 1  # methods are a bounded set too
    assert counts[("GET", "/api/health", "200")] >= 1  # the fixture's readiness probe
    timed = {k[1:]: v for k, v in samples.items() if k[0].endswith("_seconds_count")}
    assert timed[("POST", "/api/sessions", "201")] == 3
    assert (
        samples[("hivelog_http_request_duration_seconds_sum", "POST", "/api/sessions", "201")] > 0
    )
    # never the raw path: ids stay out of the labels
    assert sid not in text and "no-such-session" not in text and "nowhere" not in text
    assert "PROPFIND" not in text
