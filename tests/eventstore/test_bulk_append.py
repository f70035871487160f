"""`SQLiteBulkAppender` (hivelog import-hive's writer) stores exactly what the store's
appends store, and leaves to `EventStore.append` every append that is not plain."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstore import ANY, NO_STREAM, NewEvent, open_store
from eventstore.bulk import BulkAppend, BulkRows, SQLiteBulkAppender
from eventstore.chain import content_digest
from eventstore.types import Expected
from tools.audit import audit
from tools.audit_source import open_source


def events(stream: str, n: int, first: int = 0) -> list[NewEvent]:
    return [
        NewEvent(
            "tick",
            orjson.dumps({"stream": stream, "i": i, "text": "ü" * (i % 5)}),
            None if i % 3 else orjson.dumps({"m": i}),
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stream}:{i}")),
        )
        for i in range(first, first + n)
    ]


def _digests(batch: list[NewEvent]) -> list[bytes]:
    return [content_digest(e.data, e.metadata) for e in batch]


def rows(path: Path) -> list[tuple[Any, ...]]:
    """Everything but the commit time (and the links, which chain it)."""
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "SELECT position, stream_id, version, event_id, type, data, metadata, digest "
            "FROM events ORDER BY position"
        ).fetchall()
        found += conn.execute("SELECT * FROM streams ORDER BY stream_id").fetchall()
        found += conn.execute("SELECT last_position, chain_position FROM log_head").fetchall()
        return found
    finally:
        conn.close()


async def sound(url: str) -> bool:
    source = await open_source(url)
    try:
        report = await audit(source)
    finally:
        await source.close()
    # these streams hold no hive envelopes: only the payload check may object
    failing = {check for check, n in report.counts.items() if n}
    stats = report.stats
    return (
        failing <= {"payloads"} and stats["chain_links"] == stats["events"] + stats["erased_events"]
    )


def as_rows(stream: str, batch: list[NewEvent], expected: Expected) -> BulkRows:
    """The append as import-hive sends it: rows with their content digests."""
    return BulkRows(
        stream,
        [(str(e.event_id), e.type, e.data, e.metadata, content_digest(e.data, e.metadata))
         for e in batch],
        expected,
    )  # fmt: skip


@pytest.mark.parametrize("form", ["events", "digests", "rows"])
async def test_plain_appends_store_what_the_store_stores(tmp_path: Path, form: str) -> None:
    """Also when the caller hands over the content digests (import-hive's parsing
    process computes them), or the events as rows: the same rows, digests and links."""
    plan: list[tuple[str, list[NewEvent], Expected]] = [
        ("s1", events("s1", 5), NO_STREAM),
        ("s2", events("s2", 3), NO_STREAM),
        ("s1", events("s1", 4, first=5), 5),
        ("$imports", events("$imports", 1), ANY),
    ]
    by_store, by_bulk = tmp_path / "store.db", tmp_path / "bulk.db"
    store = await open_store(f"sqlite:///{by_store}")
    await store.append("s0", events("s0", 2))  # both logs start from a non-empty head
    for stream, batch, expected in plan:
        await store.append(stream, batch, expected=expected)
    await store.close()
    store = await open_store(f"sqlite:///{by_bulk}")
    await store.append("s0", events("s0", 2))
    await store.close()
    bulk = SQLiteBulkAppender(str(by_bulk))
    appends: list[BulkAppend | BulkRows] = [
        as_rows(s, b, e) if form == "rows" else BulkAppend(s, b, e, _digests(b) if form == "digests" else None)
        for s, b, e in plan
    ]  # fmt: skip
    assert bulk.append_many(appends) == []
    if form == "rows":  # what the store is given for an append the appender leaves
        assert [a.new_events() for a in appends] == [b for _, b, _ in plan]
    bulk.close()
    assert rows(by_bulk) == rows(by_store)
    assert await sound(f"sqlite:///{by_bulk}")
    store = await open_store(f"sqlite:///{by_bulk}")  # the store appends on after it
    await store.append("s2", events("s2", 1, first=3), expected=3)
    await store.close()
    assert await sound(f"sqlite:///{by_bulk}")


async def test_what_is_not_plain_is_left_to_the_store(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = await open_store(f"sqlite:///{path}")
    await store.append("old", events("old", 2))
    await store.append("gone", events("gone", 1))
    await store.delete_stream("gone")
    await store.append("$imports", events("$imports", 1))
    await store.close()
    bulk = SQLiteBulkAppender(str(path))
    left = bulk.append_many(
        [
            BulkAppend("new", events("new", 2), NO_STREAM),  # plain
            BulkAppend("old", events("old", 1, first=2), 1),  # head is 2: not met
            BulkAppend("gone", events("gone", 1, first=1), ANY),  # deleted
            BulkAppend("$imports", events("$imports", 1), ANY),  # a retry of a stored id
            BulkAppend("new", [NewEvent("t", {"not": "bytes"}, None, "x")], 2),  # unencoded
            BulkAppend("old", events("old", 1, first=2), 2),  # plain
            BulkAppend("two", events("two", 2), NO_STREAM, [b"x" * 32]),  # a digest short
        ]
    )
    assert left == [1, 2, 3, 4, 6]
    # an event id already stored in another stream: nothing of the group is written
    before = rows(path)
    assert bulk.append_many(
        [BulkAppend("fresh", events("fresh", 1), NO_STREAM), BulkAppend("x", events("new", 1), 0)]
    ) == [0, 1]
    assert rows(path) == before
    bulk.close()
    assert await sound(f"sqlite:///{path}")


@pytest.mark.parametrize(
    "bad",
    [
        ("id", "tick", {"not": "bytes"}, None, b"d" * 32),  # data not encoded
        ("id", "tick", b"{}", {"m": 1}, b"d" * 32),  # metadata not encoded
        ("id", " ", b"{}", None, b"d" * 32),  # a blank type
        ("id", "t" * 300, b"{}", None, b"d" * 32),  # a type too long
        ("", "tick", b"{}", None, b"d" * 32),  # no id
        ("id", "tick", b"x" * (1 << 20) + b"x", None, b"d" * 32),  # over the size limit
        ("id", "tick", b"{}", None, None),  # no digest
    ],
)
async def test_a_row_the_store_must_judge_leaves_its_whole_append(
    tmp_path: Path, bad: tuple[Any, ...]
) -> None:
    """The events of an append are checked as they are written: one that is not plain
    (here the third) leaves the whole append to the store, and the appends after it in
    the group get the positions and links as if it had not been there."""
    by_store, by_bulk = tmp_path / "store.db", tmp_path / "bulk.db"
    store = await open_store(f"sqlite:///{by_store}")
    await store.append("a", events("a", 3), expected=NO_STREAM)
    await store.append("c", events("c", 2), expected=NO_STREAM)
    await store.close()
    await (await open_store(f"sqlite:///{by_bulk}")).close()
    middle = as_rows("b", events("b", 4), NO_STREAM)
    spoilt = BulkRows("b", [*middle.rows[:2], bad, *middle.rows[3:]], NO_STREAM)
    bulk = SQLiteBulkAppender(str(by_bulk))
    group = [
        as_rows("a", events("a", 3), NO_STREAM),
        spoilt,
        as_rows("c", events("c", 2), NO_STREAM),
    ]
    assert bulk.append_many(group) == [1]
    bulk.close()
    assert rows(by_bulk) == rows(by_store)
    assert await sound(f"sqlite:///{by_bulk}")
