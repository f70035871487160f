"""SQLite group commit: appends queued together behave exactly like the same appends
made one after another, each with its own outcome, on a real SQLite file.

Appends started in one `asyncio.gather` all queue before the writer task first runs,
so they share one transaction, where consecutive appends are checked and written as
one run (eventstore/sqlite.py `_append_run`); the `on_commit` hook proves the sharing.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import NewEvent, open_store
from eventstore.base import encode_events
from eventstore.sqlite import SQLiteStore
from eventstore.types import (
    AppendResult,
    DuplicateEventId,
    Expected,
    ExpectedState,
    StreamDeleted,
)
from tests.support.group_commit import chain_faults, eight_appends_in_one_batch, outcomes


async def opened(url: str) -> tuple[SQLiteStore, list[int]]:
    store = await open_store(url)
    assert isinstance(store, SQLiteStore)
    batches: list[int] = []
    store.on_commit.append(lambda jobs, _seconds: batches.append(jobs))
    return store, batches


async def test_one_batch_each_append_its_own_outcome(db_url: str) -> None:
    store, batches = await opened(db_url)
    try:
        await eight_appends_in_one_batch(store, batches, [8])  # one transaction carried all eight
    finally:
        await store.close()
    assert await chain_faults(db_url) == []


async def test_an_id_reused_within_one_batch(db_url: str) -> None:
    """The second use of an id in the same transaction: a retry where it fits, else a
    clash; the appends around it are written as usual."""
    store, batches = await opened(db_url)
    try:
        results = await outcomes(
            [
                store.append("a", [NewEvent("x", {"n": 1})]),
                store.append("s", [NewEvent("x", {"n": 2}, event_id="twice")], 0),
                store.append("s", [NewEvent("x", {"n": 2}, event_id="twice")], 0),  # retry
                store.append("other", [NewEvent("x", {"n": 3}, event_id="twice")]),  # clash
                store.append("s", [NewEvent("x", {"n": 4})], 1),
            ]
        )
        assert batches == [5]
        assert results[0] == AppendResult("a", 1, 1, 1)
        assert results[1] == AppendResult("s", 1, 1, 2)
        assert results[2] == AppendResult("s", 1, 1, 2)
        assert isinstance(results[3], DuplicateEventId)
        assert results[4] == AppendResult("s", 2, 2, 3)
        events = await store.read_all(0, 100)
        assert [(e.stream_id, e.version, e.position) for e in events] == [
            ("a", 1, 1),
            ("s", 1, 2),
            ("s", 2, 3),
        ]
    finally:
        await store.close()
    assert await chain_faults(db_url) == []


async def test_a_cancelled_caller_still_gets_its_append_written(db_url: str) -> None:
    """As documented: cancelled after submitting, the append may still commit (here it
    does, since it was queued), and a retry with the same ids returns its result."""
    store, _ = await opened(db_url)
    try:
        pending = asyncio.create_task(store.append("s", [NewEvent("x", {}, event_id="c1")]))
        await asyncio.sleep(0)  # queued now
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        assert pending.cancelled()
        again = await store.append("s", [NewEvent("x", {}, event_id="c1")], 0)
        assert again == AppendResult("s", 1, 1, 1)
        assert [e.event_id for e in await store.read("s")] == ["c1"]
    finally:
        await store.close()


async def test_a_close_cancelled_while_it_drains_still_closes_everything(
    db_url: str,
) -> None:
    """A caller cancelled inside close() (shutdown timing out, say) does not leave the
    store half closed: the closing runs on, queued appends are written, and any later
    close() waits for the same closing, after which the writer connection is shut."""
    store, _ = await opened(db_url)
    appends = [asyncio.ensure_future(store.append("t", [NewEvent("x", {})])) for _ in range(50)]
    await asyncio.sleep(0)
    closer = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    closer.cancel()
    await asyncio.gather(closer, return_exceptions=True)
    assert closer.cancelled()
    await asyncio.wait_for(store.close(), 30)  # bounds only a hang
    results = await asyncio.wait_for(asyncio.gather(*appends), 30)
    assert sorted(r.last_position for r in results) == list(range(1, 51))
    assert isinstance(store, SQLiteStore) and store._conn is not None
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        store._conn.execute("SELECT 1")
    reopened = await open_store(db_url)
    try:
        assert await reopened.head_position() == 50
    finally:
        await reopened.close()


async def test_a_delete_between_appends_of_one_batch(db_url: str) -> None:
    store, batches = await opened(db_url)
    try:
        await store.append("s", [NewEvent("x", {})])
        batches.clear()
        results = await outcomes(
            [
                store.append("s", [NewEvent("x", {})], 1),
                store.delete_stream("s"),
                store.append("s", [NewEvent("x", {})]),
                store.append("t", [NewEvent("x", {})], ExpectedState.NO_STREAM),
            ]
        )
        assert batches == [4]
        assert results[0] == AppendResult("s", 2, 2, 2)
        assert results[1] is None
        assert isinstance(results[2], StreamDeleted)
        assert results[3] == AppendResult("t", 1, 1, 3)
    finally:
        await store.close()
    assert await chain_faults(db_url) == []


async def test_heads_written_by_another_connection_are_seen(db_url: str) -> None:
    """The writer remembers stream heads between transactions; a commit by another
    connection on the same file (another process, a tool) must not be missed."""
    one, _ = await opened(db_url)
    two, _ = await opened(db_url)
    try:
        assert await one.append("s", [NewEvent("x", {})], 0) == AppendResult("s", 1, 1, 1)
        assert await two.append("s", [NewEvent("x", {})], 1) == AppendResult("s", 2, 2, 2)
        assert await one.append("s", [NewEvent("x", {})], 2) == AppendResult("s", 3, 3, 3)
        await two.delete_stream("s")  # `one` last saw s live at version 3
        with pytest.raises(StreamDeleted):
            await one.append("s", [NewEvent("x", {})])
        assert await one.append("t", [NewEvent("x", {})], 0) == AppendResult("t", 1, 1, 4)
    finally:
        await two.close()
        await one.close()
    assert await chain_faults(db_url) == []


# An append: (stream index, expectation: None = ANY, -1 = NO_STREAM, else exact version,
# event ids: each from a small pool, so retries and clashes happen; None = a fresh id).
APPENDS = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.one_of(st.none(), st.integers(-1, 3)),
        st.lists(st.one_of(st.none(), st.sampled_from("abcdef")), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=12,
)


def as_expected(expected: int | None) -> Expected:
    if expected is None:
        return ExpectedState.ANY
    return ExpectedState.NO_STREAM if expected == -1 else expected


def comparable(outcome: Any) -> Any:
    return outcome if isinstance(outcome, AppendResult) else type(outcome).__name__


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(appends=APPENDS)
def test_a_batch_equals_the_same_appends_one_by_one(
    appends: list[tuple[int, int | None, list[str | None]]],
) -> None:
    async def body(folder: Path) -> None:
        batched, batches = await opened(f"sqlite:///{folder / 'batched.db'}")
        serial, _ = await opened(f"sqlite:///{folder / 'serial.db'}")
        fresh = iter(range(1000))
        calls = [
            (
                f"s{stream}",
                [
                    NewEvent("e", {"n": n}, event_id=ident or f"fresh-{next(fresh)}")
                    for n, ident in enumerate(dict.fromkeys(ids))  # no id twice in one append
                ],
                as_expected(expected),
            )
            for stream, expected, ids in appends
        ]
        try:
            together = await outcomes([batched.append(*call) for call in calls])
            one_by_one = [(await outcomes([serial.append(*call)]))[0] for call in calls]
            assert batches == [len(calls)]
            assert [comparable(r) for r in together] == [comparable(r) for r in one_by_one]
            rows = [
                [(e.position, e.stream_id, e.version, e.event_id) for e in await s.read_all(0, 100)]
                for s in (batched, serial)
            ]
            assert rows[0] == rows[1]
            assert [p for p, *_ in rows[0]] == list(range(1, len(rows[0]) + 1))
            for stream in ("s0", "s1", "s2"):
                assert await batched.stream_info(stream) == await serial.stream_info(stream)
        finally:
            await batched.close()
            await serial.close()
        if rows[0]:
            assert await chain_faults(f"sqlite:///{folder / 'batched.db'}") == []

    folder = Path(tempfile.mkdtemp(prefix="hivelog-gc-"))
    try:
        asyncio.run(body(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_default_event_ids_are_canonical_time_ordered_uuid7_text() -> None:
    """Built without uuid.UUID objects (they cost more than the rest of the encoding);
    their leading 48 bits are the creation millisecond, so later ids sort later."""
    ids = [e.event_id for e in encode_events([NewEvent("x", {}) for _ in range(2000)])]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    before_ms = time.time_ns() // 1_000_000
    time.sleep(0.003)
    later = encode_events([NewEvent("x", {})])[0].event_id
    assert later > max(ids)  # a later millisecond sorts after every earlier id
    assert int(later.replace("-", "")[:12], 16) > before_ms
