"""Startup refuses a database it must not touch, and leaves the file byte-for-byte alone.

Real files: a hivelog log stamped with a newer schema version, another application's
SQLite database, random bytes, and a hivelog log with a damaged page. Each is kept
in rollback-journal mode, so a refusal that switched it to WAL would show.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from eventstore import NewEvent, StoreRefused, open_store
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import free_port
from tests.support.tools_support import ROOT, hivelog


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's bytes and which side files exist next to it."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    side = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))
    return digest, side


async def make_log(path: Path, events: int = 50) -> None:
    store = await open_store(f"sqlite:///{path}")
    for i in range(events):
        await store.append(f"s{i % 5}", [NewEvent("thing", {"i": i, "pad": "x" * 200})])
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")  # so a refusal that touched WAL would show
    conn.close()


def serve_exit(url: str) -> subprocess.CompletedProcess[bytes]:
    """`hivelog serve` on the database; it must refuse and exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "tools", "serve", "--db", url, "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def assert_refused_untouched(path: Path, *needles: bytes) -> None:
    before = fingerprint(path)
    url = f"sqlite:///{path}"
    served = serve_exit(url)
    assert served.returncode == 2, served.stderr.decode()
    for needle in needles:
        assert needle in served.stderr, served.stderr.decode()
    assert b"Traceback" not in served.stderr
    for command in (("replay", "--rebuild"), ("export",)):
        other = hivelog(*command, "--db", url)
        assert other.returncode == 2, (command, other.stderr.decode())
        assert b"Traceback" not in other.stderr
    assert fingerprint(path) == before


async def assert_open_refused(path: Path) -> None:
    before = fingerprint(path)
    with pytest.raises(StoreRefused):
        await open_store(f"sqlite:///{path}")
    assert fingerprint(path) == before


async def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    await make_log(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
    conn.commit()
    conn.close()
    assert_refused_untouched(path, b"newer hivelog", b"schema version 99")
    await assert_open_refused(path)
    audit = hivelog("audit", "--db", f"sqlite:///{path}")
    assert b"Traceback" not in audit.stderr


async def test_foreign_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.commit()
    conn.close()
    assert_refused_untouched(path, b"not a hivelog database", b"invoices")
    await assert_open_refused(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


async def test_random_bytes_are_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "noise.db"
    path.write_bytes(os.urandom(64 * 1024))
    assert_refused_untouched(path, b"not a SQLite database")
    await assert_open_refused(path)
    audit = hivelog("audit", "--db", f"sqlite:///{path}")
    assert audit.returncode == 2 and b"not a SQLite database" in audit.stderr


def damage_a_page(path: Path) -> None:
    """Overwrite the header of a b-tree page in the middle of the file."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        f.seek(page_size * (pages // 2))
        f.write(b"\xff" * 64)


async def test_damaged_page_is_refused_and_audited_as_faults(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    await make_log(path, events=400)
    damage_a_page(path)
    assert_refused_untouched(path, b"quick_check")
    await assert_open_refused(path)
    before = fingerprint(path)
    audit = hivelog("audit", "--db", f"sqlite:///{path}")
    assert audit.returncode == 1, audit.stderr.decode()
    assert b"Traceback" not in audit.stderr + audit.stdout
    assert b"storage" in audit.stdout and b"FAULTS FOUND" in audit.stdout
    as_json = hivelog("audit", "--db", f"sqlite:///{path}", "--json")
    assert as_json.returncode == 1 and b'"storage":' in as_json.stdout
    assert fingerprint(path) == before


async def test_sound_log_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "sound.db"
    await make_log(path)
    store = await open_store(f"sqlite:///{path}")
    assert await store.head_position() == 50
    await store.close()


@pytest.mark.postgres
async def test_postgres_newer_or_foreign_schema_is_refused(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    store = await open_store(url)
    await store.close()
    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            f"INSERT INTO {schema}.schema_migrations (version, description) VALUES (99, 'x')"
        )
    finally:
        await conn.close()
    with pytest.raises(StoreRefused, match="newer hivelog"):
        await open_store(url)
    served = serve_exit(url)
    assert served.returncode == 2 and b"newer hivelog" in served.stderr

    foreign = fresh_url(pg_dsn)
    other = foreign.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {other}; CREATE TABLE {other}.invoices (id int)")
    finally:
        await conn.close()
    with pytest.raises(StoreRefused, match="not a hivelog log"):
        await open_store(foreign)
    served = serve_exit(foreign)
    assert served.returncode == 2 and b"not a hivelog log" in served.stderr


async def test_broken_chain_among_the_newest_events_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edited.db"
    await make_log(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET type = 'forged' WHERE position = 49")
    conn.commit()
    conn.close()
    before = fingerprint(path)
    served = serve_exit(f"sqlite:///{path}")
    assert served.returncode == 2, served.stderr.decode()
    assert b"hash chain is broken" in served.stderr and b"position 49" in served.stderr
    assert fingerprint(path) == before
