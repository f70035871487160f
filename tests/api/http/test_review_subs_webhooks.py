"""Webhooks that must fire: when the session is too busy to record a hit (a 503 the
sender retries, not a 404 "No active webhook" that loses it), and when a producer tried
to take the id the hit's event will have beforehand.

Contention enough to exhaust `SessionService.execute`'s retries happens under load
(1 hit in 40 on PostgreSQL with 40 producers on the session, /work/scratch/subs/
r13_webhook_busy.py) but not on demand, so this runs the real app in-process on a real
SQLite store and makes `execute` give up as it does then (Conflict)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.core.service import Decide
from api.core.settings import Settings
from api.http.state import Parts
from projections.errors import Conflict
from projections.schedule import FIRE_NAMESPACE, fire_event_text
from projections.session import SessionState
from tests.support.sessions_support import head, make_colony, make_env

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


def test_a_producer_cannot_take_the_id_of_a_coming_fire_or_delivery(tmp_path: Path) -> None:
    """Derived ids are computable: appended first, the webhook's hit was answered as a
    duplicate and the timer's slot counted as fired, so neither ever fired."""
    env = make_env(tmp_path)
    tick = {
        "id": "tick",
        "name": "Tick",
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": 60},
        "task": "t",
    }
    colony = make_colony(env.root, "c1", triggers=[OPEN, tick])
    server = env.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            r = c.post("/api/sessions", json={"agent_path": str(colony)})
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]
            triggers = {
                t["id"]: t for t in c.get(f"/api/sessions/{sid}/triggers").json()["triggers"]
            }
            slot = fire_event_text(sid, "tick", triggers["tick"]["next_fire_at"])
            hook = str(uuid.uuid5(FIRE_NAMESPACE, f"hook\x00{sid}\x00open\x00d-7"))
            before = head(c)
            for taken in (slot, hook):
                body = {"events": [{"type": "note"}, {"type": "note", "id": taken}]}
                r = c.post(f"/api/sessions/{sid}/events", json=body)
                assert r.status_code == 400 and "events[1].id" in r.json()["error"], r.text
            assert head(c) == before
            mine = [str(uuid.uuid4()), str(uuid.uuid5(uuid.NAMESPACE_URL, "x")).upper()]
            r = c.post(
                f"/api/sessions/{sid}/events",
                json={"events": [{"type": "n", "id": i} for i in mine]},
            )
            assert r.status_code == 201, r.text
            r = c.post("/api/webhooks/open", content=b"x", headers={"x-github-delivery": "d-7"})
            assert r.status_code == 202 and r.json()["fired"] == [
                {"session_id": sid, "trigger_id": "open"}
            ], r.text
    finally:
        server.stop()


def test_an_empty_secret_lets_no_one_in(tmp_path: Path) -> None:
    """`"secret": ""` passes the config check and looked protected, but the HMAC key was
    empty: anyone could sign. It now matches no signature (401), nothing recorded."""
    env = make_env(tmp_path)
    hook = {**OPEN, "trigger_config": {"path": "/open", "methods": ["POST"], "secret": ""}}
    colony = make_colony(env.root, "c1", triggers=[hook])
    server = env.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            assert c.post("/api/sessions", json={"agent_path": str(colony)}).status_code == 201
            before = head(c)
            signed = "sha256=" + hmac.new(b"", b"evil", hashlib.sha256).hexdigest()
            for headers in ({}, {"x-hub-signature-256": signed}):
                r = c.post("/api/webhooks/open", content=b"evil", headers=headers)
                assert r.status_code == 401, r.text
            assert head(c) == before
    finally:
        server.stop()
