"""`SQLiteBulkAppender.begin_load`: into an empty log, one transaction with the index on
event ids built at the end. It stores what the store's appends store,
keeps event ids unique without the index, leaves the log as it was on any way out
but `finish_load`, and ends with the schema's own indexes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from eventstore import ANY, NO_STREAM, DuplicateEventId, open_store
from eventstore.bulk import BulkAppend, SQLiteBulkAppender
from eventstore.types import Expected
from tests.eventstore.test_bulk_append import events, rows, sound


def indexes(path: Path) -> list[tuple[str, str]]:
    """Every index definition of the file, as SQLite stores it."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "ORDER BY name"
        ).fetchall()
    finally:
        conn.close()


async def fresh(path: Path) -> None:
    store = await open_store(f"sqlite:///{path}")
    await store.close()


PLAN: list[tuple[str, int, int, Expected]] = [
    ("s1", 5, 0, NO_STREAM),
    ("s2", 3, 0, NO_STREAM),
    ("s1", 4, 5, 5),
    ("$imports", 1, 0, ANY),
]


async def _the_plan_by_store_and_a_fresh_file(tmp_path: Path) -> tuple[Path, Path]:
    """PLAN appended through the store into one file; a fresh log beside it to load."""
    by_store, by_load = tmp_path / "store.db", tmp_path / "load.db"
    store = await open_store(f"sqlite:///{by_store}")
    for stream, n, first, expected in PLAN:
        await store.append(stream, events(stream, n, first), expected=expected)
    await store.close()
    await fresh(by_load)
    return by_store, by_load


async def test_a_load_stores_what_the_store_stores(tmp_path: Path) -> None:
    by_store, by_load = await _the_plan_by_store_and_a_fresh_file(tmp_path)
    schema = indexes(by_load)
    assert {name for name, _ in schema} >= {"events_event_id", "events_stream_version"}
    bulk = SQLiteBulkAppender(str(by_load))
    assert bulk.begin_load()
    in_load = {name for (name,) in bulk.conn.execute("SELECT name FROM sqlite_master")}
    assert "events_event_id" not in in_load  # random keys: built at the end
    assert "events_stream_version" in in_load  # keys in order: kept row by row
    # two groups, as import-hive sends them
    groups = [PLAN[:2], PLAN[2:]]
    for group in groups:
        appends = [BulkAppend(s, events(s, n, f), e) for s, n, f, e in group]
        assert bulk.append_many(appends) == []
    assert bulk.loading
    bulk.finish_load()
    assert not bulk.loading
    bulk.close()
    assert rows(by_load) == rows(by_store)
    assert indexes(by_load) == schema  # the schema's own definitions, all of them
    assert await sound(f"sqlite:///{by_load}")
    store = await open_store(f"sqlite:///{by_load}")  # the store appends on after it
    await store.append("s2", events("s2", 1, first=3), expected=3)
    with pytest.raises(DuplicateEventId):  # the unique index is back in force
        await store.append("other", events("s1", 1))
    await store.close()
    assert await sound(f"sqlite:///{by_load}")


async def test_no_load_into_a_log_that_is_not_empty(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = await open_store(f"sqlite:///{path}")
    await store.append("old", events("old", 2))
    await store.close()
    before, schema = rows(path), indexes(path)
    bulk = SQLiteBulkAppender(str(path))
    assert not bulk.begin_load()
    assert not bulk.loading
    # appends commit group by group, as without a load
    assert bulk.append_many([BulkAppend("new", events("new", 1), NO_STREAM)]) == []
    bulk.close()
    assert indexes(path) == schema
    assert len(rows(path)) == len(before) + 2  # the event, its stream head


async def test_no_load_while_a_service_holds_a_lease_on_the_log(tmp_path: Path) -> None:
    """A running service renews its node lease; a load would hold the write lock for the
    whole import and its writes would time out. An expired lease does not count."""
    path = tmp_path / "log.db"
    store = await open_store(f"sqlite:///{path}")
    lease = await store.leases.acquire("node:a", "a", 30)
    assert lease is not None
    bulk = SQLiteBulkAppender(str(path))
    assert not bulk.begin_load()
    assert bulk.append_many([BulkAppend("new", events("new", 1), NO_STREAM)]) == []
    assert len(await store.read("new")) == 1  # committed by the group, not held
    await store.leases.release(lease)
    bulk.close()
    await store.close()

    path2 = tmp_path / "log2.db"
    store = await open_store(f"sqlite:///{path2}")
    assert await store.leases.acquire("node:b", "b", 0.01) is not None
    await store.close()
    await asyncio.sleep(0.05)
    bulk = SQLiteBulkAppender(str(path2))
    assert bulk.begin_load()  # that lease has expired: nobody is using the log
    bulk.close()


async def test_an_id_written_by_the_load_is_left_to_the_store(tmp_path: Path) -> None:
    """Without the event-id index the load checks ids itself: an append repeating one
    (from another append, or within itself) is left, and the load is committed first,
    so the store can answer it as it always does."""
    path = tmp_path / "log.db"
    await fresh(path)
    bulk = SQLiteBulkAppender(str(path))
    assert bulk.begin_load()
    twice = events("twin", 1) * 2
    left = bulk.append_many(
        [
            BulkAppend("a", events("a", 3), NO_STREAM),
            BulkAppend("b", events("a", 1, first=2), NO_STREAM),  # a's third id again
            BulkAppend("c", events("c", 2), NO_STREAM),  # plain: written
            BulkAppend("twin", twice, NO_STREAM),  # one id twice in one append
        ]
    )
    assert left == [1, 3]
    assert not bulk.loading  # committed: the store takes the rest
    bulk.close()
    stored = rows(path)
    assert [r[1] for r in stored if len(r) > 7] == ["a", "a", "a", "c", "c"]
    assert {name for name, _ in indexes(path)} >= {"events_event_id"}
    store = await open_store(f"sqlite:///{path}")
    with pytest.raises(DuplicateEventId):
        await store.append("b", events("a", 1, first=2), expected=NO_STREAM)
    await store.close()
    assert await sound(f"sqlite:///{path}")


async def test_the_unique_index_build_refuses_a_duplicate_and_undoes_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the load's own check miss a repeated id, rebuilding the unique index
    refuses it, and the whole load is rolled back: the log is as it was."""
    path = tmp_path / "log.db"
    await fresh(path)
    before, schema = rows(path), indexes(path)
    bulk = SQLiteBulkAppender(str(path))
    monkeypatch.setattr(bulk, "_clashes", lambda _events: False)  # the check, defeated
    assert bulk.begin_load()
    assert bulk.append_many([BulkAppend("a", events("a", 2), NO_STREAM)]) == []
    assert bulk.append_many([BulkAppend("b", events("a", 1), NO_STREAM)]) == []
    with pytest.raises(sqlite3.IntegrityError):
        bulk.finish_load()
    assert not bulk.loading
    bulk.close()
    assert rows(path) == before
    assert indexes(path) == schema
    assert await sound(f"sqlite:///{path}")


async def test_a_load_not_finished_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    """Closed (an error, Ctrl-C) before `finish_load`: nothing of it is in the log, the
    indexes are all there, and a store opened meanwhile saw none of it."""
    path = tmp_path / "log.db"
    await fresh(path)
    before, schema = rows(path), indexes(path)
    bulk = SQLiteBulkAppender(str(path))
    assert bulk.begin_load()
    assert bulk.append_many([BulkAppend("a", events("a", 50), NO_STREAM)]) == []
    assert indexes(path) == schema  # other connections: the committed schema
    assert rows(path) == before
    bulk.close()
    assert rows(path) == before
    assert indexes(path) == schema
    store = await open_store(f"sqlite:///{path}")
    await store.append("a", events("a", 1), expected=NO_STREAM)
    await store.close()
    assert await sound(f"sqlite:///{path}")


def _journal_mode(path: Path) -> str:
    """The mode the file's header records (a new connection reads it)."""
    conn = sqlite3.connect(path)
    try:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return mode
    finally:
        conn.close()


async def test_a_load_with_the_file_to_itself_writes_no_wal(tmp_path: Path) -> None:
    """`own_file`: the load runs in a rollback journal with the file locked for it; the
    same rows as the store's, the schema's indexes, and the file in WAL mode again."""
    by_store, by_load = await _the_plan_by_store_and_a_fresh_file(tmp_path)
    schema = indexes(by_load)
    bulk = SQLiteBulkAppender(str(by_load))
    assert bulk.begin_load(own_file=True)
    assert bulk.journal
    assert bulk.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    for stream, n, first, expected in PLAN:
        assert bulk.append_many([BulkAppend(stream, events(stream, n, first), expected)]) == []
    assert Path(f"{by_load}-journal").exists()
    assert not Path(f"{by_load}-wal").exists()
    other = sqlite3.connect(by_load, timeout=0)  # locked for the load: not even a read
    with pytest.raises(sqlite3.OperationalError):
        other.execute("SELECT count(*) FROM events").fetchone()
    other.close()
    bulk.finish_load()
    assert not bulk.journal
    bulk.close()
    assert _journal_mode(by_load) == "wal"
    assert rows(by_load) == rows(by_store)
    assert indexes(by_load) == schema
    assert await sound(f"sqlite:///{by_load}")


async def test_a_load_that_cannot_have_the_file_to_itself_runs_in_the_wal(
    tmp_path: Path,
) -> None:
    """Another connection has the file open (here the store's): SQLite refuses to leave
    WAL mode, and the load runs in the WAL as without `own_file`."""
    path = tmp_path / "log.db"
    store = await open_store(f"sqlite:///{path}")
    bulk = SQLiteBulkAppender(str(path))
    assert bulk.begin_load(own_file=True)
    assert not bulk.journal
    assert bulk.append_many([BulkAppend("a", events("a", 2), NO_STREAM)]) == []
    bulk.finish_load()
    bulk.close()
    assert len(await store.read("a")) == 2
    await store.close()
    assert _journal_mode(path) == "wal"


async def test_a_journal_load_given_up_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    """Closed before `finish_load` (an error, Ctrl-C): nothing of it, indexes all there,
    WAL mode again."""
    path = tmp_path / "log.db"
    await fresh(path)
    schema = indexes(path)
    bulk = SQLiteBulkAppender(str(path))
    assert bulk.begin_load(own_file=True) and bulk.journal
    assert bulk.append_many([BulkAppend("a", events("a", 2), NO_STREAM)]) == []
    bulk.close()
    assert _journal_mode(path) == "wal"
    assert indexes(path) == schema
    assert rows(path)[-1] == (0, 0)  # the log head: nothing written
    assert await sound(f"sqlite:///{path}")
