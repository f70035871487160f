"""Random command sequences through the real API against a simple model.

After every step: the live views the server returns equal views built from a
fold of the whole log (read straight from the SQLite file), the model agrees on
which sessions are live and what colony they hold, and a refused command left
the log exactly as it was.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from eventstore import RecordedEvent
from projections import views
from projections.catalogue import fold_all
from tests.support.server import Server
from tests.support.sessions_support import TIMER, Env, head, make_colony, make_env

pytestmark = pytest.mark.slow

IDS = ["s1", "s2", "s3"]
COLONIES = ["alpha", "beta"]
VOLATILE = {"uptime_seconds"}  # and entry points' next_fire_in/at, see stable()


def read_log(db_path: str) -> list[RecordedEvent]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT stream_id, version, position, event_id, type, data, metadata, recorded_at "
            "FROM events ORDER BY position"
        ).fetchall()
    finally:
        conn.close()
    return [RecordedEvent._make(r) for r in rows]


def stable(view: dict[str, Any]) -> dict[str, Any]:
    """Drop what depends on the reading instant (uptime, countdowns)."""
    out = {k: v for k, v in view.items() if k not in VOLATILE}
    if "entry_points" in out:
        out["entry_points"] = [
            {k: v for k, v in e.items() if k not in ("next_fire_in", "next_fire_at")}
            for e in out["entry_points"]
        ]
    return out


class SessionMachine(RuleBasedStateMachine):
    env: Env
    server: Server

    def __init__(self) -> None:
        super().__init__()
        tmp = Path(tempfile.mkdtemp(prefix="hivelog-stateful-"))
        self.env = make_env(tmp)
        self.folders = {
            name: make_colony(self.env.root, name, triggers=[TIMER] if name == "alpha" else [])
            for name in COLONIES
        }
        self.server = self.env.start()
        self.http = httpx.Client(base_url=self.server.base_url, timeout=30)
        self.model: dict[str, dict[str, Any]] = {}  # id -> {live, colony}
        self.deleted: set[str] = set()

    def teardown(self) -> None:
        self.http.close()
        self.server.stop()
        shutil.rmtree(self.env.tmp, ignore_errors=True)

    def _refused(self, r: httpx.Response, before: int) -> None:
        assert 400 <= r.status_code < 500, r.text
        assert head(self.http) == before, "a refused command appended events"

    @rule(sid=st.sampled_from(IDS), colony=st.sampled_from([None, *COLONIES]))
    def create(self, sid: str, colony: str | None) -> None:
        body: dict[str, Any] = {"session_id": sid}
        if colony:
            body["agent_path"] = str(self.folders[colony])
        before = head(self.http)
        r = self.http.post("/api/sessions", json=body)
        if sid in self.model or sid in self.deleted:
            self._refused(r, before)
            assert r.status_code == 409
            return
        assert r.status_code == 201, r.text
        self.model[sid] = {"live": True, "colony": colony}

    @rule(sid=st.sampled_from(IDS))
    def resume(self, sid: str) -> None:
        before = head(self.http)
        r = self.http.post("/api/sessions", json={"queen_resume_from": sid})
        if sid not in self.model:
            self._refused(r, before)
            return
        assert r.status_code == 201, r.text
        if self.model[sid]["live"]:
            assert head(self.http) == before
        self.model[sid]["live"] = True

    @rule(sid=st.sampled_from(IDS))
    def stop(self, sid: str) -> None:
        before = head(self.http)
        r = self.http.delete(f"/api/sessions/{sid}")
        if not self.model.get(sid, {}).get("live"):
            self._refused(r, before)
            return
        assert r.status_code == 200
        self.model[sid]["live"] = False

    @rule(sid=st.sampled_from(IDS), colony=st.sampled_from(COLONIES))
    def load(self, sid: str, colony: str) -> None:
        before = head(self.http)
        r = self.http.post(
            f"/api/sessions/{sid}/colony", json={"agent_path": str(self.folders[colony])}
        )
        entry = self.model.get(sid)
        if entry is None or not entry["live"] or entry["colony"] is not None:
            self._refused(r, before)
            return
        assert r.status_code == 200, r.text
        entry["colony"] = colony

    @rule(sid=st.sampled_from(IDS))
    def unload(self, sid: str) -> None:
        before = head(self.http)
        r = self.http.delete(f"/api/sessions/{sid}/colony")
        entry = self.model.get(sid)
        if entry is None or not entry["live"] or entry["colony"] is None:
            self._refused(r, before)
            return
        assert r.status_code == 200
        entry["colony"] = None

    @rule(sid=st.sampled_from(IDS))
    def delete(self, sid: str) -> None:
        r = self.http.delete(f"/api/sessions/history/{sid}")
        assert r.status_code == 200
        if sid in self.model:
            del self.model[sid]
            self.deleted.add(sid)

    @rule(
        route=st.sampled_from(["/api/sessions", "/api/sessions/s1/colony"]),
        raw=st.sampled_from([b"{", b"[]", b'{"initial_phase": 3}', b'{"agent_path": "/etc"}']),
    )
    def garbage(self, route: str, raw: bytes) -> None:
        before = head(self.http)
        r = self.http.post(route, content=raw, headers={"content-type": "application/json"})
        self._refused(r, before)

    @invariant()
    def views_equal_fold_of_log(self) -> None:
        db_path = self.env.db_url.removeprefix("sqlite:///")
        catalogue = fold_all(read_log(db_path))
        now = time.time()
        live = self.http.get("/api/sessions").json()["sessions"]
        assert [stable(s) for s in live] == [
            stable(views.live_dict(s, now)) for s in catalogue.sessions.values() if s.live
        ]
        history = self.http.get("/api/sessions/history").json()["sessions"]
        # hive 54fd8db: queen DMs only, newest session id first
        dms = [s for s in catalogue.sessions.values() if s.colony is None]
        expected = sorted(dms, key=lambda s: s.session_id, reverse=True)
        assert history == [views.colony_row(s, overlay=True) for s in expected]
        for colony_id in {s.colony.colony_id for s in catalogue.sessions.values() if s.colony}:
            rows = self.http.get(f"/api/colonies/{colony_id}/sessions").json()["sessions"]
            bound = [
                s
                for s in catalogue.sessions.values()
                if s.colony is not None and s.colony.colony_id == colony_id
            ]
            want_rows = sorted(bound, key=lambda s: s.session_id, reverse=True)
            assert rows == [views.colony_row(s, overlay=True) for s in want_rows]
        for sid, state in catalogue.sessions.items():
            got = self.http.get(f"/api/sessions/{sid}").json()
            want = views.detail_dict(state, now) if state.live else views.cold_info(state)
            assert stable(got) == stable(want)
        # the model agrees with the log
        assert {sid for sid, s in catalogue.sessions.items() if s.live} == {
            sid for sid, m in self.model.items() if m["live"]
        }
        for sid, m in self.model.items():
            colony = catalogue.sessions[sid].colony
            assert (colony.colony_id if colony else None) == m["colony"]
        assert set(catalogue.deleted) == self.deleted


SessionMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
TestSessionMachine = SessionMachine.TestCase
