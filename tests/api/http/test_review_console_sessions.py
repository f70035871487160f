"""The console's Sessions view lists every session on record (review of the console,
metrics and health area).

The view merged /api/sessions/history with /api/sessions, but hive's history lists
only sessions without a colony: a stopped session that had a colony appeared nowhere
in the console. It also fetched the whole history every 3 s to show 200 rows. Now
GET /api/admin/sessions searches and cuts the list on the server (bounded `q`,
`state` and `limit`), and the view reads it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.http.test_console_browser import Tab, browser, serving, tab  # noqa: F401
from tests.support.server import running_server
from tests.support.sessions_support import TIMER, make_colony, make_env

TOKEN = "list-token"


def test_admin_sessions_lists_live_and_cold_with_and_without_a_colony(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    make_colony(env.root, "demo", triggers=[TIMER])
    server = running_server(env.db_url, tmp_path, [*env.args(), "--token", TOKEN], env.env())
    headers = {"X-Hive-Token": TOKEN}
    with server as srv, httpx.Client(base_url=srv.base_url, headers=headers, timeout=30) as c:
        colony = c.post("/api/sessions", json={"agent_path": str(env.root / "demo")})
        stopped_colony = colony.json()["session_id"]
        stopped_plain = c.post("/api/sessions", json={}).json()["session_id"]
        live = c.post("/api/sessions", json={}).json()["session_id"]
        for sid in (stopped_colony, stopped_plain):
            assert c.delete(f"/api/sessions/{sid}").status_code == 200

        body = c.get("/api/admin/sessions").json()
        assert body["total"] == body["matched"] == 3
        rows = {row["session_id"]: row for row in body["sessions"]}
        assert set(rows) == {stopped_colony, stopped_plain, live}
        assert [row["session_id"] for row in body["sessions"]] == sorted(rows, reverse=True)
        assert rows[stopped_colony]["live"] is False
        assert rows[stopped_colony]["colony"] == colony.json()["colony_name"] != ""
        assert rows[stopped_colony]["agent_path"] == str(env.root / "demo")
        assert rows[stopped_colony]["event_count"] > 0
        assert rows[live]["live"] is True and rows[live]["colony"] == ""

        cold = c.get("/api/admin/sessions", params={"state": "cold"}).json()
        assert {r["session_id"] for r in cold["sessions"]} == {stopped_colony, stopped_plain}
        found = c.get("/api/admin/sessions", params={"q": "DEMO " + stopped_colony[-8:]}).json()
        assert [r["session_id"] for r in found["sessions"]] == [stopped_colony]
        one = c.get("/api/admin/sessions", params={"limit": "1"}).json()
        assert len(one["sessions"]) == 1 and one["matched"] == 3

        for bad in (
            {"limit": "0"},
            {"limit": "2001"},
            {"limit": "x"},
            {"limit": "²"},
            {"state": "dead"},
            {"q": "a" * 257},
        ):
            r = c.get("/api/admin/sessions", params=bad)
            assert r.status_code == 400 and "error" in r.json(), (bad, r.text)
        assert httpx.get(f"{srv.base_url}/api/admin/sessions").status_code == 401


@pytest.mark.slow
def test_the_sessions_view_shows_a_stopped_colony_session(tab: Tab, tmp_path: Path) -> None:  # noqa: F811
    env = make_env(tmp_path)
    make_colony(env.root, "demo", triggers=[TIMER])
    with serving(tab, running_server(env.db_url, tmp_path, env.args(), env.env())) as srv:
        with httpx.Client(base_url=srv.base_url, timeout=30) as c:
            made = c.post("/api/sessions", json={"agent_path": str(env.root / "demo")})
            sid = made.json()["session_id"]
            assert c.delete(f"/api/sessions/{sid}").status_code == 200
        page = tab.page
        page.goto(f"{srv.base_url}/console#/sessions")
        row = page.locator(f'a.srow[data-id="{sid}"]')
        row.wait_for()
        assert "cold" in row.inner_text() and "demo" in row.inner_text()
        page.get_by_label("Live or cold").select_option("live")
        page.wait_for_function("document.querySelectorAll('a.srow').length === 0")
        page.get_by_label("Live or cold").select_option("cold")
        row.wait_for()
