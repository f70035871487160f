"""A real `hivelog serve` on PostgreSQL: NUL in input and a killed read connection give
a clear 4xx / 503, never a 500 (asyncpg's own exceptions reached the error handler)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from eventstore.pg_schema import SchemaNames
from eventstore.postgres import parse_postgres_url
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import Server, start_server
from tests.support.sessions_support import Env, client

pytestmark = pytest.mark.postgres


@pytest.fixture
def node(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[Env, Server]]:  # noqa: F811
    root = (tmp_path / "colonies").resolve()
    root.mkdir()
    (tmp_path / "hive").mkdir()
    env = Env(tmp_path, fresh_url(pg_dsn), root, tmp_path / "hive")
    server = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-a"], env.env())
    try:
        yield env, server
    finally:
        server.stop()


def test_nul_in_an_event_type_or_id_is_a_400_and_appends_nothing(
    node: tuple[Env, Server],
) -> None:
    _env, server = node
    with client(server) as c:
        sid = c.post("/api/sessions", json={}).json()["session_id"]
        before = c.get("/api/health").json()["head_position"]
        for event in ({"type": "a\u0000b"}, {"type": "note", "id": "x\u0000y"}):
            r = c.post(f"/api/sessions/{sid}/events", json={"events": [event]})
            assert r.status_code == 400, r.text
            assert "NUL" in r.json()["error"]
        assert c.get("/api/health").json()["head_position"] == before
        ok = c.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "note"}]})
        assert ok.status_code == 201, ok.text


def test_history_filtered_by_a_type_with_nul_matches_nothing(node: tuple[Env, Server]) -> None:
    _env, server = node
    with client(server) as c:
        sid = c.post("/api/sessions", json={}).json()["session_id"]
        r = c.get(f"/api/sessions/{sid}/events/history", params={"types": "a\u0000b"})
        assert r.status_code == 200, r.text
        assert r.json()["events"] == []
        r = c.get(
            f"/api/sessions/{sid}/events/history",
            params={"types": "x\u0000,session_created"},
        )
        assert r.status_code == 200, r.text
        assert [e["type"] for e in r.json()["events"]] == ["session_created"]


async def _kill_the_reader(dsn: str, url: str, request: threading.Thread) -> None:
    """Hold the events table locked until the node's read waits on it, then kill that
    backend and let the lock go."""
    _, schema, _ = parse_postgres_url(url)
    q = SchemaNames.for_schema(schema).q
    side = await asyncpg.connect(dsn)
    watch = await asyncpg.connect(dsn)
    try:
        async with side.transaction():
            await side.execute(f"LOCK TABLE {q}.events IN ACCESS EXCLUSIVE MODE")
            request.start()
            pid = None
            for _ in range(800):  # until the read is seen waiting on the lock (bounded)
                pid = await watch.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND application_name = 'hivelog' "
                    "AND query LIKE $1",
                    f"%{q}.events%",
                )
                if pid is not None:
                    break
                await asyncio.sleep(0.0125)
            assert pid is not None, "the read never waited on the lock"
            await watch.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await side.close()
        await watch.close()


def test_a_read_whose_connection_is_killed_is_a_503(
    node: tuple[Env, Server],
    pg_dsn: str,  # noqa: F811
) -> None:
    env, server = node
    with client(server) as c:
        sid = c.post("/api/sessions", json={}).json()["session_id"]
    answers: list[httpx.Response] = []

    def read() -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            answers.append(c.get(f"/api/sessions/{sid}/events/history", params={"limit": 5}))

    request = threading.Thread(target=read)
    asyncio.run(_kill_the_reader(pg_dsn, env.db_url, request))
    request.join(60)
    assert len(answers) == 1
    assert answers[0].status_code == 503, answers[0].text
    with client(server) as c:  # the pool replaced the connection
        again = c.get(f"/api/sessions/{sid}/events/history", params={"limit": 5})
        assert again.status_code == 200 and again.json()["total"] >= 1
