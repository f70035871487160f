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
from eventstore.bulk import BulkAppend, SQLiteBulkAppender
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


@pytest.mark.parametrize("given_digests", [False, True])
async def test_plain_appends_store_what_the_store_stores(
    tmp_path: Path, given_digests: bool
) -> None:
    """Also when the caller hands over the content digests (import-hive's parsing
    process computes them): the same rows, digests and links."""
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
    appends = [BulkAppend(s, b, e, _digests(b) if given_digests else None) for s, b, e in plan]
    assert bulk.append_many(appends) == []
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
