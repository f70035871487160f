"""SQLite checkpoints written in parts: appends commit in between, nothing half-written
is ever loaded, superseded and orphaned parts are deleted, old files migrate."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import EventStoreError, open_store
from eventstore import sqlite_checkpoints as checkpoints
from eventstore.sqlite import MIGRATIONS, SQLiteStore
from tests.support.store_contract import ev

BIG = 5 * checkpoints.PART_BYTES + 123  # six parts


def _parts(path: str) -> list[tuple[str, int, int]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, generation, part FROM checkpoint_parts ORDER BY 1, 2, 3")
        return [tuple(r) for r in rows]
    finally:
        conn.close()


async def _sqlite(db_url: str) -> SQLiteStore:
    store = await open_store(db_url)
    assert isinstance(store, SQLiteStore)
    return store


async def test_appends_commit_between_the_parts_of_one_save(db_url: str) -> None:
    store = await _sqlite(db_url)
    order: list[str] = []

    async def save() -> None:
        await store.save_checkpoint("cat", 1, b"x" * BIG)
        order.append("saved")

    async def appends() -> None:
        await asyncio.sleep(0)  # the save's first part is queued first
        await store.append("s", [ev()])
        order.append("appended")

    await asyncio.gather(save(), appends())
    # one transaction for the whole state would acknowledge the append after the save
    assert order == ["appended", "saved"]
    assert store.batch_sizes.count(1) >= len(checkpoints.split(b"x" * BIG))
    await store.close()


async def test_superseded_parts_are_deleted(db_url: str) -> None:
    store = await _sqlite(db_url)
    await store.save_checkpoint("cat", 1, b"a" * BIG)
    first = _parts(store.path)
    assert len(first) == 6 and {g for _, g, _ in first} == {first[0][1]}
    await store.save_checkpoint("cat", 2, b"b" * BIG)
    second = _parts(store.path)
    assert len(second) == 6 and second[0][1] != first[0][1]
    await store.save_checkpoint("cat", 3, b"small")  # fits in the row: no parts at all
    assert _parts(store.path) == []
    cp = await store.load_checkpoint("cat")
    assert cp is not None and (cp.position, cp.state) == (3, b"small")
    await store.close()


async def test_a_cancelled_save_leaves_the_last_checkpoint_and_its_orphans_go_next_time(
    db_url: str,
) -> None:
    store = await _sqlite(db_url)
    await store.save_checkpoint("cat", 1, b"old")
    task = asyncio.create_task(store.save_checkpoint("cat", 2, b"n" * BIG))
    deadline = time.monotonic() + 10
    while len(_parts(store.path)) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _parts(store.path)  # written, never published
    cp = await store.load_checkpoint("cat")
    assert cp is not None and (cp.position, cp.state) == (1, b"old")
    await store.save_checkpoint("cat", 3, b"new")
    assert _parts(store.path) == []
    await store.close()


async def test_missing_parts_read_as_no_checkpoint_and_refuse_to_publish(db_url: str) -> None:
    store = await _sqlite(db_url)
    await store.save_checkpoint("cat", 1, b"p" * BIG)
    conn = sqlite3.connect(store.path)
    with conn:  # another process deleting a part of the published checkpoint
        conn.execute("DELETE FROM checkpoint_parts WHERE part = 2")
    conn.close()
    assert await store.load_checkpoint("cat") is None  # never a state with a hole in it

    generation = 7
    parts = checkpoints.split(b"q" * BIG)
    await store._submit(lambda ctx: checkpoints.write_part(ctx, "cat", generation, 0, parts[0]))
    with pytest.raises(EventStoreError, match="1 of 6 parts found"):
        await store._submit(
            lambda ctx: checkpoints.publish(ctx, "cat", 9, b"q" * BIG, generation, parts)
        )
    await store.close()


def test_an_old_file_migrates_and_keeps_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    for version, script in enumerate(MIGRATIONS[:5], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute(
        "INSERT INTO checkpoints (name, position, state, saved_at) VALUES ('c', 0, ?, 0)",
        (b"before",),
    )
    conn.close()

    async def reopen() -> None:
        store = await open_store(f"sqlite:///{path}")
        cp = await store.load_checkpoint("c")
        assert cp is not None and (cp.position, cp.state) == (0, b"before")
        await store.save_checkpoint("c", 0, b"z" * BIG)
        cp = await store.load_checkpoint("c")
        assert cp is not None and cp.state == b"z" * BIG
        await store.close()

    asyncio.run(reopen())


@settings(max_examples=60, deadline=None)
@given(
    state=st.binary(max_size=64),
    part_bytes=st.integers(min_value=1, max_value=80),
    drop=st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
)
def test_join_parts_gives_the_state_or_nothing(
    state: bytes, part_bytes: int, drop: int | None
) -> None:
    """What `STATE_SQL` returns for a checkpoint, joined back: the state exactly, or
    None when any part is missing."""
    parts = checkpoints.split(state, part_bytes)
    if not parts:
        rows: list[tuple[object, ...]] = [(4, state, 0, None)]
    else:
        rows = [(4, b"", len(parts), p) for p in parts]
    if drop is not None and parts:
        del rows[drop % len(rows)]
    expected = None if drop is not None and parts else (4, state)
    assert checkpoints.join_parts(rows) == expected
    assert checkpoints.join_parts([]) is None
