"""The console's server side on a real `hivelog serve`: the static files are public
and only the shipped ones are served; POST /api/admin/audit runs the audit's checks
(same report as `hivelog audit --json`) behind the token; GET /api/admin/nodes
lists the live nodes."""

from __future__ import annotations

import asyncio
import sqlite3
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import httpx
import orjson
import pytest

from api.http.console import FILES
from tests.support.pg import admin, fresh_url, pg_dsn  # noqa: F401
from tests.support.server import running_server
from tests.support.sessions_support import TIMER, make_colony, make_env
from tests.support.tools_support import hivelog

TOKEN = "s3cret-token"


def test_every_module_the_page_imports_ships() -> None:
    """index.html and each module's relative imports name files that are in FILES."""
    assert "index.html" in FILES
    for name, (body, _) in FILES.items():
        if name.endswith(".js"):
            for line in body.decode().splitlines():
                if line.startswith("import ") and " from " in line:
                    target = line.rsplit(" from ", 1)[1].strip(' ";').removeprefix("./")
                    assert target in FILES, f"{name} imports missing {target}"


def test_pyproject_ships_every_console_file() -> None:
    """A non-editable install carries the console: every file matches package-data.
    (Checked by hand too: `pip wheel .` lists api/http/console/*.)"""
    config = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api.http"]
    for name in FILES:
        assert any(fnmatch(f"console/{name}", p) for p in patterns), name


def test_static_files_are_public_and_api_needs_the_token(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    server = running_server(env.db_url, tmp_path, [*env.args(), "--token", TOKEN], env.env())
    with server as srv, httpx.Client(base_url=srv.base_url, timeout=30) as c:
        page = c.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert b'type="module"' in page.content
        js = c.get("/console/main.js")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        assert c.get("/console/console.css").headers["content-type"].startswith("text/css")
        for bad in ("/console/nope.js", "/console/..%2Fhttp%2Fadmin.py", "/console/%2e%2e/x"):
            r = c.get(bad)
            assert r.status_code == 404, bad
            assert "error" in r.json()
        assert c.post("/api/admin/audit").status_code == 401
        assert c.get("/api/admin/nodes").status_code == 401
        assert c.get("/api/sessions").status_code == 401
        ok = c.get("/api/sessions", headers={"X-Hive-Token": TOKEN})
        assert ok.status_code == 200


def test_audit_route_reports_what_the_cli_reports(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    make_colony(env.root, "demo", triggers=[TIMER])
    server = running_server(env.db_url, tmp_path, env.args(), env.env())
    with server as srv, httpx.Client(base_url=srv.base_url, timeout=60) as c:
        sid = c.post("/api/sessions", json={"agent_path": str(env.root / "demo")}).json()[
            "session_id"
        ]
        for _ in range(3):
            assert c.post(f"/api/sessions/{sid}/triggers/daily/run").status_code == 200
        before = c.get("/api/health").json()["head_position"]
        r = c.post("/api/admin/audit")
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["ok"] is True, report
        assert {"storage", "chain", "stream_versions"} <= set(report["checks"])
        assert report["stats"]["trigger_fires"] == 3
        # read-only: the audit appended nothing
        assert c.get("/api/health").json()["head_position"] == before
        assert c.get("/api/admin/audit").status_code == 405

        cli = hivelog("audit", "--db", env.db_url, "--json")
        expected = orjson.loads(cli.stdout)
        # (not `skipped`: the service may save its projection checkpoint in between,
        # which turns the projections check from skipped into run)
        for key in ("ok", "fault_counts", "faults"):
            assert report[key] == expected[key], key

        # A fault the audit must find: a row removed behind the service's back.
        db = sqlite3.connect(env.db_url.removeprefix("sqlite:///"))
        with db:
            db.execute("DELETE FROM events WHERE stream_id = ? AND version = 2", (sid,))
        db.close()
        broken = c.post("/api/admin/audit").json()
        assert broken["ok"] is False
        assert broken["fault_counts"]["stream_versions"] >= 1
        assert any(f["stream_id"] == sid for f in broken["faults"])


@pytest.mark.parametrize("node_id", ["console-node-a"])
def test_nodes_route_lists_this_node(tmp_path: Path, node_id: str) -> None:
    env = make_env(tmp_path)
    with running_server(
        env.db_url, tmp_path, [*env.args(), "--node-id", node_id], env.env()
    ) as srv:
        body = httpx.get(f"{srv.base_url}/api/admin/nodes", timeout=30).json()
        assert body["this_node"] == node_id
        assert [n["node_id"] for n in body["nodes"]] == [node_id]
        assert body["nodes"][0]["expires_in"] > 0


def test_history_lists_event_count_and_runner_node(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with (
        running_server(
            env.db_url, tmp_path, [*env.args(), "--node-id", "runner-1"], env.env()
        ) as srv,
        httpx.Client(base_url=srv.base_url, timeout=30) as c,
    ):
        sid = c.post("/api/sessions", json={}).json()["session_id"]
        total = c.get(f"/api/sessions/{sid}/events/history?limit=1").json()["total"]
        (entry,) = c.get("/api/sessions/history").json()["sessions"]
        assert entry["session_id"] == sid
        assert entry["event_count"] == total > 0
        assert entry["runner_node"] == "runner-1"


@pytest.mark.postgres
def test_audit_route_on_postgresql(tmp_path: Path, pg_dsn: str) -> None:  # noqa: F811
    """The route opens its own PostgreSQL source in the worker thread's loop."""
    env = make_env(tmp_path)
    url = fresh_url(pg_dsn)
    server = running_server(url, tmp_path, env.args(), env.env())
    with server as srv, httpx.Client(base_url=srv.base_url, timeout=60) as c:
        sid = c.post("/api/sessions", json={}).json()["session_id"]
        report = c.post("/api/admin/audit").json()
        assert report["ok"] is True, report
        assert report["stats"]["events"] >= 1
        schema = url.rsplit("schema=", 1)[1]
        sql = f"DELETE FROM {schema}.events WHERE stream_id = '{sid}' AND version = 2"
        asyncio.run(admin(pg_dsn, sql))
        broken = c.post("/api/admin/audit").json()
        assert broken["ok"] is False, broken
        assert broken["fault_counts"]["stream_versions"] >= 1, broken
