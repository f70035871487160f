"""Webhooks when the session is too busy to record a hit: a 503 the sender retries,
not a 404 "No active webhook" that loses the hit.

Contention enough to exhaust `SessionService.execute`'s retries happens under load
(1 hit in 40 on PostgreSQL with 40 producers on the session, /work/scratch/subs/
r13_webhook_busy.py) but not on demand, so this runs the real app in-process on a real
SQLite store and makes `execute` give up as it does then (Conflict)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.core.service import Decide
from api.core.settings import Settings
from api.http.state import Parts
from projections.errors import Conflict
from projections.session import SessionState
from tests.support.sessions_support import make_colony

OPEN = {
    "id": "open",
    "name": "Open",
    "trigger_type": "webhook",
    "trigger_config": {"path": "/open", "methods": ["POST"]},
    "task": "anything",
}


async def test_a_hit_the_busy_session_could_not_record_is_503_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = (tmp_path / "colonies").resolve()
    root.mkdir()
    monkeypatch.setenv("HIVE_HOME", str(tmp_path))
    colony = make_colony(root, "c1", triggers=[OPEN])
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'h.db'}", agents_roots=(root,)))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        r = await c.post("/api/sessions", json={"agent_path": str(colony)})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        state: Parts = app.state.parts
        service = state.sessions

        async def busy(session_id: str, decide: Decide) -> SessionState:
            raise Conflict(f"Session '{session_id}' is busy; try again")

        with monkeypatch.context() as patch:
            patch.setattr(service, "execute", busy)
            headers = {"x-github-delivery": "d-1"}
            r = await c.post("/api/webhooks/open", content=b"x", headers=headers)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["busy"] == [{"session_id": sid, "trigger_id": "open"}]
        assert (await c.get(f"/api/sessions/{sid}/triggers")).json()["triggers"][0][
            "fire_count"
        ] == 0
        again = await c.post("/api/webhooks/open", content=b"x", headers=headers)
        assert again.status_code == 202, again.text
        assert again.json()["fired"] == [{"session_id": sid, "trigger_id": "open"}]
