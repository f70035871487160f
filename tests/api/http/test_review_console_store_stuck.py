"""GET /api/health and GET /metrics while the store does not answer (review of the
console, metrics and health area).

Health bounded its head read by 2 s but then read the chain head with no bound, so a
store that stopped answering (a table lock, a hung server) hung the liveness probe
itself, and /metrics (one unbounded head read) with it. A head read that failed
outright made the unguarded chain-head read fail too: 500 instead of 503. Now every
store read of the probe runs under the one bound, the answer is 503 with the store
`down`, and /metrics still serves its other figures with the head gauges NaN.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import msgspec
import pytest

from api.app import create_app
from api.core.settings import Settings
from api.http import shapes
from api.http.openapi import build_document
from tests.api.http.test_metrics import samples
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import running_server, serve_in_process

HANG = 30.0  # a hang detector, far above the 2 s probe bound


def conforms_to_the_document(response: httpx.Response) -> None:
    """The health answer's status is documented, with a body the Health shape takes."""
    document = build_document(create_app(Settings(db_url="sqlite:///unused.db")).routes)
    documented = document["paths"]["/api/health"]["get"]["responses"]
    assert str(response.status_code) in documented, sorted(documented)
    msgspec.convert(response.json(), shapes.Health)


def test_health_and_metrics_answer_while_postgresql_holds_the_log_locked(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
) -> None:
    url = fresh_url(pg_dsn)
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    with running_server(url, tmp_path) as server, httpx.Client(timeout=HANG) as c:
        assert c.post(f"{server.base_url}/api/sessions", json={}).status_code == 201
        before = c.get(f"{server.base_url}/api/health")
        assert before.status_code == 200 and before.json()["head_position"] >= 1

        async def probe_while_locked() -> tuple[httpx.Response, httpx.Response]:
            side = await asyncpg.connect(pg_dsn)
            try:
                async with side.transaction():
                    await side.execute(
                        f"LOCK TABLE {schema}.events, {schema}.log_state IN ACCESS EXCLUSIVE MODE"
                    )
                    async with httpx.AsyncClient(base_url=server.base_url, timeout=HANG) as ac:
                        return await ac.get("/api/health"), await ac.get("/metrics")
            finally:
                await side.close()

        health, metrics = asyncio.run(probe_while_locked())
        assert health.status_code == 503, health.text
        body = health.json()
        assert body["components"]["store"]["status"] == "down"
        assert "no answer within" in body["components"]["store"]["reason"]
        assert "store" in body["down"]
        assert "head_position" not in body and "chain_head" not in body
        conforms_to_the_document(health)

        assert metrics.status_code == 200, metrics.text
        figures = samples(metrics.text)
        assert math.isnan(figures["hivelog_log_head_position"])
        assert math.isnan(figures["hivelog_projection_lag_events"])
        assert "hivelog_http_requests_total" in metrics.text  # the rest is still served

        after = c.get(f"{server.base_url}/api/health")  # the lock is gone: healthy again
        assert after.status_code == 200 and after.json()["components"]["store"]["status"] == "ok"
        assert samples(c.get(f"{server.base_url}/metrics").text)["hivelog_log_head_position"] >= 1


@pytest.mark.parametrize("failing", [("head_position",), ("head_position", "chain_head")])
async def test_a_failing_store_read_is_a_documented_503(
    tmp_path: Path, failing: tuple[str, ...]
) -> None:
    """The store raises on its head reads (a real SQLite store with the reads swapped
    for failing ones): 503 with the store down and a body the document describes."""
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'h.db'}", node_id="stuck"))
    async with serve_in_process(app) as base, httpx.AsyncClient(base_url=base, timeout=HANG) as c:
        store = app.state.parts.store
        real = {name: getattr(store, name) for name in failing}

        async def fails(*args: Any, **kwargs: Any) -> Any:
            raise OSError("injected read failure")

        for name in failing:
            setattr(store, name, fails)
        try:
            r = await c.get("/api/health")
            m = await c.get("/metrics")
        finally:
            for name, method in real.items():
                setattr(store, name, method)
        assert r.status_code == 503, r.text
        assert "injected read failure" in r.json()["components"]["store"]["reason"]
        conforms_to_the_document(r)
        assert m.status_code == 200
        assert math.isnan(samples(m.text)["hivelog_log_head_position"])
        assert (await c.get("/api/health")).status_code == 200
