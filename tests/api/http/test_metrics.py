"""GET /metrics from the real app under uvicorn, appending through its own store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.core.settings import Settings
from tests.support.server import serve_in_process
from tests.support.sse_client import events, read_sse


def samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.labels or (set(s.labels) == {"le"} and s.labels["le"] == "+Inf"):
                out[s.name] = s.value
    return out


async def test_metrics_count_appends_batches_and_sse_clients(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'm.db'}", agents_roots=(tmp_path,))
    app = create_app(settings)
    async with serve_in_process(app) as url, httpx.AsyncClient(timeout=30) as c:
        before = samples((await c.get(f"{url}/metrics")).text)
        store = app.state.parts.store
        await asyncio.gather(*(store.append(f"m-{i}", events("custom", 2)) for i in range(20)))
        r = await c.get(f"{url}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        after = samples(r.text)
        assert after["hivelog_appends_total"] - before.get("hivelog_appends_total", 0) == 20
        commits = after["hivelog_group_commit_batch_size_count"] - before.get(
            "hivelog_group_commit_batch_size_count", 0
        )
        assert 1 <= commits <= 20  # concurrent appends share commits
        assert after["hivelog_append_commit_seconds_count"] >= commits
        assert after["hivelog_log_head_position"] >= 40
        if "hivelog_projection_lag_events" in after:
            assert after["hivelog_projection_lag_events"] >= 0
        assert after["hivelog_sse_clients"] == 0

        async with c.stream("GET", f"{url}/api/sessions/m-1/events?types=*&after=0") as s:
            await asyncio.wait_for(read_sse(s, 2), 30)
            assert samples((await c.get(f"{url}/metrics")).text)["hivelog_sse_clients"] == 1
        # The client went away: its producer stops and it is no longer counted.
        for _ in range(200):
            if samples((await c.get(f"{url}/metrics")).text)["hivelog_sse_clients"] == 0:
                break
            await asyncio.sleep(0.05)
        assert samples((await c.get(f"{url}/metrics")).text)["hivelog_sse_clients"] == 0
