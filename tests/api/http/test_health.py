"""GET /api/health reports every component; 503 when a required one is down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from api.core.settings import Settings
from tests.support.server import running_server, serve_in_process

COMPONENTS = {
    "store",
    "sessions_follower",
    "checkpointer",
    "node_lease",
    "node_adopter",
    "scheduler",
    "sse_hub",
}


def test_health_reports_each_component_on_a_real_server(db_url: str, tmp_path: Path) -> None:
    with running_server(db_url, tmp_path) as server:
        httpx.post(f"{server.base_url}/api/sessions", json={}).raise_for_status()
        r = httpx.get(f"{server.base_url}/api/health")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok"
        assert set(body["components"]) == COMPONENTS
        assert all(c["status"] == "ok" for c in body["components"].values())
        assert body["components"]["store"]["required"] is True
        assert body["components"]["sessions_follower"]["required"] is True
        # hive's fields and the log head stay where they were
        assert body["sessions"] == 1 and body["agents_loaded"] == 0
        assert body["head_position"] >= 1


async def _poll(client: httpx.AsyncClient, want: int, rounds: int = 500) -> dict[str, Any]:
    """Health until it answers `want` (a hang detector: up to rounds x 20 ms)."""
    for _ in range(rounds):
        r = await client.get("/api/health")
        if r.status_code == want:
            body: dict[str, Any] = r.json()
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"health never answered {want}")


async def test_a_down_follower_makes_health_503_and_recovers(tmp_path: Path) -> None:
    """A real uvicorn in this process, so the test can swap the follower's read for a
    fault-injecting double."""
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'h.db'}", node_id="health-test")
    app = create_app(settings)
    async with serve_in_process(app) as base, httpx.AsyncClient(base_url=base) as client:
        store = app.state.parts.store
        real_read_all = store.read_all

        async def failing_read_all(*args: Any, **kwargs: Any) -> Any:
            raise OSError("injected read failure")

        store.read_all = failing_read_all
        store.doorbell.ring()  # the follower reads at once
        body = await _poll(client, 503)
        follower = body["components"]["sessions_follower"]
        assert follower["status"] == "down" and "injected read failure" in follower["reason"]
        assert body["down"] == ["sessions_follower"]
        assert body["status"] == "degraded"
        store.read_all = real_read_all
        body = await _poll(client, 200)
        assert body["components"]["sessions_follower"]["status"] in {"ok", "degraded"}
        assert body["components"]["sessions_follower"]["restarts"] >= 1
        r = await client.post("/api/sessions", json={})
        assert r.status_code == 201
