"""A group commit is bounded in bytes too, not only in appends and events.

PostgreSQL takes at most 1 GB in one array parameter; a batch over it made the server
drop the commit connection, and every append in it failed as StoreUnavailable though
each was valid alone (two appends of 550 events of 1 MB, queued together). The bound is
lowered here so that the test stays small; the batching rule is the same."""

from __future__ import annotations

import asyncio

import pytest

from eventstore import InvalidEvent, NewEvent, open_store
from eventstore import postgres as pg
from tests.support.group_commit import chain_faults
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres


async def test_a_batch_stops_at_its_byte_bound(
    pg_dsn: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg, "MAX_BATCH_BYTES", 1000, raising=False)
    url = fresh_url(pg_dsn)
    store = await open_store(url)
    assert isinstance(store, pg.PostgresStore)
    batches: list[int] = []
    store.on_commit.append(lambda appends, _seconds: batches.append(appends))
    blob = b'"' + b"x" * 598 + b'"'  # 600 bytes: two do not fit under 1000
    try:
        results = await asyncio.gather(
            store.append("big-1", [NewEvent("t", blob)]),
            store.append("big-2", [NewEvent("t", blob)]),
            store.append("huge", [NewEvent("t", blob), NewEvent("t", blob)]),  # alone: taken
            store.append("small-1", [NewEvent("t", {"i": 1})]),
            store.append("small-2", [NewEvent("t", {"i": 2})]),
        )
        assert [r.last_position for r in results] == [1, 2, 4, 5, 6]
        assert batches == [1, 1, 1, 2]  # each big one alone; the small ones together
    finally:
        await store.close()
    assert await chain_faults(url) == []


async def test_one_append_over_what_postgresql_takes_in_a_call_is_invalid(
    pg_dsn: str,  # noqa: F811
) -> None:
    """1,100 events of ~1 MB are within the per-event and per-append limits, but over the
    1 GB PostgreSQL takes in one message with the rest of the call: it was sent, the
    connection dropped, and the caller got StoreUnavailable (on every retry too)."""
    store = await open_store(fresh_url(pg_dsn))
    blob = b'"' + b"x" * 1_000_000 + b'"'  # one object, shared: the test stays small
    try:
        with pytest.raises(InvalidEvent, match="in one append"):
            await store.append("big", [NewEvent("t", blob) for _ in range(1100)])
        assert await store.read_all(0, 10) == []
        done = await store.append("big", [NewEvent("t", blob) for _ in range(2)])
        assert done.last_version == 2
    finally:
        await store.close()
