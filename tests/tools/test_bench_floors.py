"""The floors `hivelog bench` sets beside issue 15's figures (tools/bench_floors.py) do
what they claim: every acknowledged row is in the file or table, durably configured,
positions gapless, each writer's versions in order. (Their speed is only measured by
`hivelog bench`, never asserted here.)"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.support.pg import pg_dsn  # noqa: F401
from tools.bench_floors import (
    FLOOR_APP,
    FLOOR_SCHEMA,
    drop_pg_floor,
    pg_floor_appends,
    sqlite_floor_appends,
)
from tools.bench_sessions import _free_port, _server, post_rate


def payload(i: int) -> bytes:
    return orjson.dumps({"i": i, "text": "x" * (i % 7)})


def stored(path: Path) -> list[tuple[int, str, int, bytes]]:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        return db.execute(
            "SELECT position, stream_id, version, data FROM events ORDER BY position"
        ).fetchall()


async def test_the_sqlite_floor_stores_every_acknowledged_row_in_order(tmp_path: Path) -> None:
    rate = await sqlite_floor_appends(tmp_path / "floor.db", 6, 25, "t", payload)
    assert rate > 0
    rows = stored(tmp_path / "floor.db")
    assert [r[0] for r in rows] == list(range(1, 151))  # gapless
    for w in range(6):
        mine = [(version, data) for _, stream, version, data in rows if stream == f"t-w{w}"]
        assert mine == [(i + 1, payload(i)) for i in range(25)]  # each writer's, in order


def test_the_http_floor_answers_only_after_storing_a_creates_three_events(
    tmp_path: Path,
) -> None:
    port = _free_port()
    argv = [sys.executable, "-c", FLOOR_APP, str(port), str(tmp_path / "f.db")]
    with _server(argv, port, tmp_path / "floor.log"):
        asyncio.run(post_rate(port, 40, 4))  # raises unless every answer is 201
    rows = stored(tmp_path / "f.db")
    # the bench's own readiness probe is a GET (405, nothing stored): 40 creates, 3 each
    assert len(rows) == 120 and [r[0] for r in rows] == list(range(1, 121))
    streams = {stream for _, stream, _, _ in rows}
    assert len(streams) == 40
    for stream in streams:
        types = [orjson.loads(d)["type"] for _, s, _, d in rows if s == stream]
        assert types == ["session_created", "queen_identity_selected", "queen_phase_changed"]


@pytest.mark.parametrize("connections", [1, 2])
async def test_the_postgres_floor_is_gapless_over_one_or_two_connections(
    pg_dsn: str,  # noqa: F811
    connections: int,
) -> None:
    url = f"{pg_dsn}{'&' if '?' in pg_dsn else '?'}schema=ignored_by_the_floor"
    try:
        await pg_floor_appends(url, 8, 20, f"c{connections}", payload, connections)
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch(
                f"SELECT position, stream_id, version FROM {FLOOR_SCHEMA}.events "
                "WHERE stream_id LIKE $1 ORDER BY position",
                f"c{connections}-%",
            )
            first = rows[0]["position"]
            assert [r["position"] for r in rows] == list(range(first, first + 160))
            for w in range(8):
                versions = [r["version"] for r in rows if r["stream_id"] == f"c{connections}-w{w}"]
                assert versions == list(range(1, 21))
        finally:
            await conn.close()
    finally:
        await drop_pg_floor(url)
    conn = await asyncpg.connect(pg_dsn)
    try:
        gone = await conn.fetchval("SELECT to_regnamespace($1) IS NULL", FLOOR_SCHEMA)
    finally:
        await conn.close()
    assert gone  # the bench leaves nothing of its floor in the user's database
