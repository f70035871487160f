"""hive's session routes on a real `hivelog serve` (uvicorn, 127.0.0.1, SQLite file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import start_server
from tests.support.sessions_support import TIMER, Env, client, head, make_colony, make_env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


LIVE_KEYS = {
    "session_id",
    "colony_id",
    "colony_name",
    "has_worker",
    "agent_path",
    "description",
    "goal",
    "node_count",
    "loaded_at",
    "uptime_seconds",
    "intro_message",
    "queen_phase",
    "queen_supports_images",
    "queen_id",
    "queen_name",
    "colony_spawned",
    "spawned_colony_name",
    "spawned_colony_id",  # hive 54fd8db
}


def test_queen_only_lifecycle(env: Env) -> None:
    server = env.start()
    try:
        with client(server) as c:
            r = c.post("/api/sessions")
            assert r.status_code == 201, r.text
            s = r.json()
            assert set(s) == LIVE_KEYS
            sid = s["session_id"]
            assert sid.startswith("session_") and s["has_worker"] is False
            assert s["queen_phase"] == "independent" and s["queen_id"] == "queen_technology"
            assert s["agent_path"] == "" and s["node_count"] == 0

            assert [x["session_id"] for x in c.get("/api/sessions").json()["sessions"]] == [sid]
            detail = c.get(f"/api/sessions/{sid}").json()
            assert detail["session_id"] == sid and detail["entry_points"] == []  # 54fd8db: always

            assert c.delete(f"/api/sessions/{sid}").json() == {"session_id": sid, "stopped": True}
            assert c.delete(f"/api/sessions/{sid}").status_code == 404
            assert c.get("/api/sessions").json()["sessions"] == []
            cold = c.get(f"/api/sessions/{sid}").json()
            assert cold["cold"] is True and cold["live"] is False
            hist = c.get("/api/sessions/history").json()["sessions"]
            assert [(h["session_id"], h["live"], h["cold"]) for h in hist] == [(sid, False, True)]
            for route in ("stats", "entry-points", "colonies"):
                assert c.get(f"/api/sessions/{sid}/{route}").status_code == 404

            r = c.post("/api/sessions", json={"queen_resume_from": sid})
            assert r.status_code == 201 and r.json()["session_id"] == sid
            before = head(c)
            r = c.post("/api/sessions", json={"queen_resume_from": sid})
            assert r.status_code == 201 and r.json()["session_id"] == sid  # hive #6334
            assert head(c) == before  # idempotent: nothing appended

            r = c.post(
                "/api/sessions",
                json={
                    "session_id": "mine",
                    "queen_name": "queen_legal",
                    "initial_phase": "incubating",
                },
            )
            assert r.status_code == 201
            assert r.json()["queen_id"] == "queen_legal"
            assert r.json()["queen_name"] == "Legal"
            assert r.json()["queen_phase"] == "incubating"
            r = c.post("/api/sessions", json={"session_id": "mine"})
            assert r.status_code == 409 and r.json() == {"error": "Session 'mine' already exists"}
    finally:
        server.stop()


def test_colony_lifecycle(env: Env) -> None:
    folder = make_colony(env.root, "news_digest", triggers=[TIMER])
    server = env.start()
    try:
        with client(server) as c:
            r = c.post("/api/sessions", json={"agent_path": str(folder)})
            assert r.status_code == 201, r.text
            s = r.json()
            sid = s["session_id"]
            assert s["has_worker"] is True and s["colony_id"] == "news_digest"
            assert s["colony_name"] == "researcher" and s["agent_path"] == str(folder)
            assert s["queen_phase"] == "working" and s["queen_id"] == "queen_growth"
            detail = c.get(f"/api/sessions/{sid}").json()
            assert detail["colonies"] == ["news_digest"]
            eps = c.get(f"/api/sessions/{sid}/entry-points").json()["entry_points"]
            assert [e["id"] for e in eps] == ["default", "daily"]
            assert eps[1]["active"] is True and eps[1]["task"] == "send the digest"
            assert eps[1]["trigger_config"] == {"cron": "0 9 * * *"}
            stats = c.get(f"/api/sessions/{sid}/stats").json()
            assert stats["entry_points"] == 2 and stats["running"] is True

            r = c.post(f"/api/sessions/{sid}/colony", json={"agent_path": str(folder)})
            assert r.status_code == 409
            before = head(c)
            assert c.delete(f"/api/sessions/{sid}/colony").json() == {
                "session_id": sid,
                "colony_unloaded": True,
            }
            assert head(c) == before + 2  # trigger_removed + colony_unloaded
            assert c.get(f"/api/sessions/{sid}/colonies").json() == {"colonies": []}
            assert c.get(f"/api/sessions/{sid}/stats").json() == {}
            r = c.delete(f"/api/sessions/{sid}/colony")
            assert r.status_code == 409 and r.json()["error"] == "No colony loaded in this session"
            r = c.post(
                f"/api/sessions/{sid}/colony",
                json={"agent_path": str(folder), "colony_id": "alias"},
            )
            assert r.status_code == 200 and r.json()["colony_id"] == "alias"

            # reveal returns hive's folder path and creates nothing
            path = c.post(f"/api/sessions/{sid}/reveal").json()["path"]
            assert path.endswith(f"queens/queen_growth/sessions/{sid}")
            assert not Path(path).exists()
    finally:
        server.stop()


def test_bad_input_is_4xx_and_appends_nothing(env: Env, tmp_path: Path) -> None:
    good = make_colony(env.root, "good")
    empty = env.root / "empty"
    empty.mkdir()
    outside = make_colony(tmp_path / "elsewhere", "evil")
    (env.root / "link").symlink_to(outside)
    server = env.start()
    try:
        with client(server) as c:
            sid = c.post("/api/sessions").json()["session_id"]
            before = head(c)
            cases: list[tuple[str, str, bytes | dict[str, Any] | None, int, str | None]] = [
                ("POST", "/api/sessions", b"{not json", 400, "Invalid JSON body"),
                ("POST", "/api/sessions", b"[1]", 400, "Request body must be a JSON object"),
                (
                    "POST",
                    "/api/sessions",
                    {"initial_phase": "dreaming"},
                    400,
                    "Invalid initial_phase 'dreaming'",
                ),
                (
                    "POST",
                    "/api/sessions",
                    {"queen_name": "queen_nobody"},
                    404,
                    "Queen 'queen_nobody' not found",
                ),
                ("POST", "/api/sessions", {"agent_path": str(outside)}, 400, None),
                ("POST", "/api/sessions", {"agent_path": str(env.root / "link")}, 400, None),
                ("POST", "/api/sessions", {"agent_path": str(env.root / ".." / "x")}, 400, None),
                ("POST", "/api/sessions", {"agent_path": str(env.root)}, 400, None),
                ("POST", "/api/sessions", {"agent_path": str(good) + "\x00"}, 400, None),
                ("POST", "/api/sessions", {"agent_path": 7}, 400, None),
                (
                    "POST",
                    "/api/sessions",
                    {"agent_path": str(empty)},
                    404,
                    f"Agent not found: {empty}",
                ),
                ("POST", "/api/sessions", {"session_id": "../etc"}, 400, None),
                (
                    "POST",
                    "/api/sessions",
                    {"queen_resume_from": "nope"},
                    404,
                    "Session 'nope' not found",
                ),
                ("POST", f"/api/sessions/{sid}/colony", b"{bad", 400, "Invalid JSON body"),
                ("POST", f"/api/sessions/{sid}/colony", {}, 400, "colony_id is required"),
                ("POST", f"/api/sessions/{sid}/colony", {"agent_path": str(empty)}, 404, None),
                (
                    "POST",
                    f"/api/sessions/{sid}/colony",
                    {"agent_path": str(good), "colony_id": "a/b"},
                    400,
                    None,
                ),
                ("DELETE", f"/api/sessions/{sid}/colony", None, 409, None),
                ("DELETE", "/api/agents", b"{bad", 400, "Invalid JSON body"),
                ("DELETE", "/api/agents", {}, 400, "agent_path is required"),
                ("DELETE", "/api/agents", {"agent_path": str(outside)}, 400, None),
                ("PATCH", "/api/agents/metadata", b"nope", 400, "Invalid JSON body"),
                ("PATCH", "/api/agents/metadata", {"agent_path": str(good), "icon": 5}, 400, None),
                ("GET", "/api/sessions/bad..id", None, 400, None),
                ("DELETE", "/api/sessions/history/%24sessions", None, 400, None),
            ]
            for route in ("", "/stats", "/entry-points", "/colonies", "/reveal", "/colony"):
                method = "POST" if route in ("/reveal", "/colony") else "GET"
                body = {"agent_path": str(good)} if route == "/colony" else None
                cases.append(
                    (
                        method,
                        f"/api/sessions/unknown{route}",
                        body,
                        404,
                        "Session 'unknown' not found",
                    )
                )
            cases.append(("DELETE", "/api/sessions/unknown", None, 404, None))
            cases.append(("DELETE", "/api/sessions/unknown/colony", None, 404, None))
            for method, url, sent, status, message in cases:
                if isinstance(sent, bytes):
                    r = c.request(
                        method, url, content=sent, headers={"content-type": "application/json"}
                    )
                else:
                    r = c.request(method, url, json=sent)
                assert r.status_code == status, (method, url, sent, r.text)
                assert isinstance(r.json()["error"], str)
                if message is not None:
                    assert r.json()["error"] == message, (url, r.json())
                assert head(c) == before, (method, url, body)
            r = c.post("/api/sessions", json={"initial_phase": "x"})
            assert r.json()["valid"] == ["colony", "independent"]  # hive 54fd8db wins
    finally:
        server.stop()


def test_delete_history_erases_for_good(env: Env) -> None:
    server = env.start()
    try:
        with client(server) as c:
            c.post("/api/sessions", json={"session_id": "gone"})
            assert c.delete("/api/sessions/history/gone").json() == {"deleted": "gone"}
            assert c.get("/api/sessions/gone").status_code == 404
            assert c.get("/api/sessions/history").json()["sessions"] == []
            assert c.delete("/api/sessions/history/gone").status_code == 200
            assert c.delete("/api/sessions/history/never").json() == {"deleted": "never"}
            r = c.post("/api/sessions", json={"session_id": "gone"})
            assert r.status_code == 409
            assert c.post("/api/sessions", json={"queen_resume_from": "gone"}).status_code == 404
    finally:
        server.stop()
    import sqlite3

    conn = sqlite3.connect(env.db_url.removeprefix("sqlite:///"))
    try:
        assert conn.execute("SELECT count(*) FROM events WHERE stream_id='gone'").fetchone() == (0,)
        types = [
            r[0]
            for r in conn.execute(
                "SELECT type FROM events WHERE stream_id='$sessions' ORDER BY position"
            )
        ]
        assert types == ["session_deleted", "session_erased"]
    finally:
        conn.close()


def test_restart_restores_live_sessions_colonies_and_triggers(env: Env) -> None:
    folder = make_colony(env.root, "ops", triggers=[TIMER])
    server = env.start()
    try:
        with client(server) as c:
            live = c.post("/api/sessions", json={"agent_path": str(folder)}).json()["session_id"]
            cold = c.post("/api/sessions", json={"initial_phase": "reviewing"}).json()
            c.delete(f"/api/sessions/{cold['session_id']}")
            before_live = c.get(f"/api/sessions/{live}").json()
    finally:
        server.stop()
    os.rename(folder, env.root / "moved")  # replay must not need the folder
    server = env.start()
    try:
        with client(server) as c:
            assert [s["session_id"] for s in c.get("/api/sessions").json()["sessions"]] == [live]
            after = c.get(f"/api/sessions/{live}").json()
            for key in ("colony_id", "agent_path", "queen_phase", "colonies"):
                assert after[key] == before_live[key], key
            for view in (after, before_live):  # the countdown moves on; the rest must not
                for entry in view["entry_points"]:
                    entry.pop("next_fire_in", None)
            assert after["entry_points"] == before_live["entry_points"]
            assert c.get(f"/api/sessions/{cold['session_id']}").json()["cold"] is True
    finally:
        server.stop()


def test_discover_metadata_and_delete_agent(env: Env) -> None:
    folder = make_colony(
        env.root, "my_colony", metadata={"colony_name": "my_colony", "icon": "bee"}
    )
    make_colony(env.root, "other")
    server = env.start()
    try:
        with client(server) as c:
            sid = c.post("/api/sessions", json={"agent_path": str(folder)}).json()["session_id"]
            found = c.get("/api/discover").json()
            entries = {e["path"]: e for e in found["Your Agents"]}
            mine = entries[str(folder)]
            assert mine["is_loaded"] is True and mine["session_count"] == 1
            assert mine["name"] == "My Colony" and mine["icon"] == "bee"
            assert mine["workers"][0]["task"] == "goal of my_colony"
            assert entries[str(env.root / "other")]["is_loaded"] is False

            r = c.patch("/api/agents/metadata", json={"agent_path": str(folder), "icon": "rocket"})
            assert r.json() == {"ok": True}
            assert '"rocket"' in (folder / "metadata.json").read_text()
            assert c.get("/api/discover").json()["Your Agents"][0]["icon"] == "rocket"

            r = c.request("DELETE", "/api/agents", json={"agent_path": str(folder)})
            assert r.json() == {"deleted": str(folder)} and not folder.exists()
            assert c.get("/api/sessions").json()["sessions"] == []  # its session was stopped
            assert c.get(f"/api/sessions/{sid}").json()["cold"] is True
    finally:
        server.stop()


def test_framework_agents_cannot_be_deleted(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    framework_root = env.hive_home / "agents"
    folder = make_colony(framework_root, "builtin")
    server = start_server(env.db_url, tmp_path, ["--agents-root", str(framework_root)], env.env())
    try:
        with client(server) as c:
            r = c.request("DELETE", "/api/agents", json={"agent_path": str(folder)})
            assert r.status_code == 403 and r.json() == {"error": "Cannot delete framework agents"}
            assert folder.exists()
    finally:
        server.stop()


def test_health_counts_sessions_and_loaded_agents(env: Env) -> None:
    folder = make_colony(env.root, "h")
    server = env.start()
    try:
        with client(server) as c:
            c.post("/api/sessions")
            c.post("/api/sessions", json={"agent_path": str(folder)})
            body = c.get("/api/health").json()
            assert body["status"] == "ok"
            assert (body["sessions"], body["agents_loaded"]) == (2, 1)
    finally:
        server.stop()


def test_colony_queen_session_id_is_resumed(env: Env) -> None:
    """hive: metadata.json's queen_session_id names the session a colony opens in."""
    server = env.start()
    try:
        with client(server) as c:
            c.post("/api/sessions", json={"session_id": "forked"})
            c.delete("/api/sessions/forked")
            folder = make_colony(
                env.root, "forky", metadata={"queen_session_id": "forked", "queen_name": "x"}
            )
            r = c.post("/api/sessions", json={"agent_path": str(folder)})
            assert r.status_code == 201 and r.json()["session_id"] == "forked"
            assert r.json()["colony_id"] == "forky" and r.json()["queen_phase"] == "working"
            again = c.post("/api/sessions", json={"agent_path": str(folder)})
            assert again.status_code == 201 and again.json()["session_id"] == "forked"
    finally:
        server.stop()
