"""The store contract on the SQLite backend, plus what only SQLite has."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

import pytest

from eventstore import EventStore, InvalidEvent, NewEvent, open_store
from eventstore.sqlite import SQLiteStore
from tests.support.store_contract import StoreContract, ev


class TestSQLiteStore(StoreContract):
    async def open_fresh(self) -> EventStore:
        folder = tempfile.mkdtemp(prefix="hivelog-test-")
        return await open_store(f"sqlite:///{folder}/store.db")


async def test_wal_and_full_sync(db_url: str) -> None:
    store = await open_store(db_url)
    assert isinstance(store, SQLiteStore)
    await store.append("s", [ev()])
    await store.close()
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_group_commit_coalesces_concurrent_appends(db_url: str) -> None:
    store = await open_store(db_url)
    assert isinstance(store, SQLiteStore)
    await asyncio.gather(*[store.append(f"s{i}", [ev(i=i)]) for i in range(64)])
    assert sum(store.batch_sizes) == 64
    assert max(store.batch_sizes) > 1  # queued while the first commit was in flight
    await store.close()


async def test_reopen_keeps_everything_and_positions(db_url: str) -> None:
    store = await open_store(db_url)
    await store.append("s", [ev(i=1), ev(i=2)])
    await store.delete_stream("s")
    await store.close()
    store = await open_store(db_url)  # migrations are idempotent
    r = await store.append("t", [ev()])
    assert r.last_position == 3
    await store.close()


async def test_erased_bytes_are_gone_from_the_file(db_url: str, tmp_path: Path) -> None:
    store = await open_store(db_url)
    await store.append("secret", [NewEvent("t", {"ssn": "SECRET-123-45-6789"})])
    await store.append("other", [ev()])
    await store.delete_stream("secret")
    await store.close()
    for f in tmp_path.iterdir():
        assert b"SECRET-123-45-6789" not in f.read_bytes(), f.name


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "mysql://x", "sqlite:///"])
async def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidEvent):
        await open_store(url)


async def test_parent_folder_is_created(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/a/b/c.db")
    await store.close()
    assert (tmp_path / "a" / "b" / "c.db").exists()


async def test_file_shrinks_after_an_erase(db_url: str, tmp_path: Path) -> None:
    """New files use incremental auto-vacuum: an erase gives the space back, measured."""
    store = await open_store(db_url)
    assert isinstance(store, SQLiteStore)
    await store.append("kept", [ev()])
    for i in range(40):
        await store.append("big", [NewEvent("blob", {"i": i, "pad": "x" * 100_000})])
    await store.close()
    path = Path(store.path)
    before = path.stat().st_size
    store = await open_store(db_url)
    await store.delete_stream("big")
    await store.close()
    after = path.stat().st_size
    print(f"\nfile size before erase {before} bytes, after {after} bytes")
    assert after < before / 4, (before, after)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    conn.close()
