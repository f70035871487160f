"""A store incident as /api/health reports it: a refused WRITE starts one (degraded);
a failed read does not (the store came back at once, yet health said "writes refused"
until the next append); and the incident ends at the next durable write, a node-lease
renewal included, so an idle server does not stay degraded. A real SQLite app, in
process, its store calls swapped for failing ones where an outage is needed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.core.settings import Settings
from eventstore import StoreUnavailable
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import serve_in_process
from tests.support.sessions_support import BACKENDS

TTL = 0.6  # the node lease is renewed every ttl/3


async def health(c: httpx.AsyncClient) -> str:
    status: str = (await c.get("/api/health")).json()["components"]["store"]["status"]
    return status


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":  # leases are not appends there: no commit hook runs
        return fresh_url(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'h.db'}"


async def test_a_failed_read_is_no_incident_and_a_lease_renewal_ends_one(url: str) -> None:
    settings = Settings(db_url=url, node_id="n", node_ttl=TTL)
    app = create_app(settings)
    async with serve_in_process(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        sid = (await c.post("/api/sessions", json={})).json()["session_id"]
        store = app.state.parts.store

        async def outage(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("injected: database unreachable")

        real_tail, real_append = store.tail_array, store.append
        store.tail_array = outage
        try:
            r = await c.get(f"/api/sessions/{sid}/events/history")
        finally:
            store.tail_array = real_tail
        assert r.status_code == 503
        assert await health(c) == "ok"  # a read that failed refused no write

        store.append = outage
        try:
            r = await c.post("/api/sessions", json={})
        finally:
            store.append = real_append
        assert r.status_code == 503
        assert await health(c) == "degraded"
        for _ in range(50):  # no append from here on: a lease renewal must end it
            if await health(c) == "ok":
                break
            await asyncio.sleep(TTL / 3)
        assert await health(c) == "ok"
