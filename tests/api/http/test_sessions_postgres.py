"""The session service and routes on a real PostgreSQL (the same code, the other twin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.core.test_sessions_rebuild import scenario
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import start_server
from tests.support.sessions_support import TIMER, client, make_colony, make_env

pytestmark = pytest.mark.postgres

OPS = [
    ("create", "a", "alpha"),
    ("create", "b", None),
    ("message", "b", "hello"),
    ("fire", "a", None),
    ("restart", None, None),
    ("stop", "a", None),
    ("load", "b", "beta"),
    ("crash", None, None),
    ("resume", "a", None),
    ("unload", "b", None),
    ("delete", "b", None),
    ("restart", None, None),
    ("create", "c", "beta"),
]


async def test_checkpoint_plus_tail_equals_full_rebuild_on_postgres(pg_dsn: str) -> None:  # noqa: F811
    await scenario(OPS, fresh_url(pg_dsn))


def test_restart_restores_sessions_on_postgres(pg_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    env = make_env(tmp_path)
    url = fresh_url(pg_dsn)
    folder = make_colony(env.root, "pg_colony", triggers=[TIMER])
    server = start_server(url, tmp_path, env.args(), env.env())
    try:
        with client(server) as c:
            sid = c.post("/api/sessions", json={"agent_path": str(folder)}).json()["session_id"]
            cold = c.post("/api/sessions").json()["session_id"]
            assert c.delete(f"/api/sessions/{cold}").status_code == 200
            assert c.request("DELETE", "/api/sessions/history/nobody").status_code == 200
    finally:
        server.kill()
    server = start_server(url, tmp_path, env.args(), env.env())
    try:
        with client(server) as c:
            live = [s["session_id"] for s in c.get("/api/sessions").json()["sessions"]]
            assert live == [sid]
            detail = c.get(f"/api/sessions/{sid}").json()
            assert detail["colony_id"] == "pg_colony"
            assert [e["id"] for e in detail["entry_points"]] == ["default", "daily"]
            assert c.get(f"/api/sessions/{cold}").json()["cold"] is True
            assert c.delete("/api/sessions/history/" + cold).json() == {"deleted": cold}
            assert c.get(f"/api/sessions/{cold}").status_code == 404
    finally:
        server.stop()
