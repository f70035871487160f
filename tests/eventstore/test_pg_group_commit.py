"""PostgreSQL group commit: appends queued together behave exactly like the same appends
made one after another, each with its own outcome, on a real PostgreSQL.

Appends started in one `asyncio.gather` all queue before the committer task first
runs, so they go in one `append_batch()` call; the `on_commit` hook proves it.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import NewEvent, open_store
from eventstore.postgres import PostgresStore
from eventstore.types import (
    AppendResult,
    DuplicateEventId,
    ExpectedState,
    StoreUnavailable,
    WrongExpectedVersion,
)
from tests.support.group_commit import chain_faults, eight_appends_in_one_batch, outcomes
from tests.support.pg import admin, fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres


async def opened(url: str) -> tuple[PostgresStore, list[int]]:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    batches: list[int] = []
    store.on_commit.append(lambda appends, _seconds: batches.append(appends))
    return store, batches


async def test_one_batch_each_append_its_own_outcome(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    store, batches = await opened(url)
    try:
        await eight_appends_in_one_batch(store, batches, [4])  # one commit carried the four written
    finally:
        await store.close()
    assert await chain_faults(url) == []


async def test_two_nodes_batching_at_once_stay_gapless_and_chained(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    one, one_batches = await opened(url)
    two, two_batches = await opened(url)
    try:

        async def writer(store: PostgresStore, name: str) -> list[int]:
            positions = []
            for i in range(15):
                result = await store.append(name, [NewEvent("tick", {"i": i})], i)
                positions.append(result.last_position)
            return positions

        written = await asyncio.gather(
            *[writer(one, f"a{w}") for w in range(8)], *[writer(two, f"b{w}") for w in range(8)]
        )
        every = sorted(p for positions in written for p in positions)
        assert every == list(range(1, 16 * 15 + 1))
        assert all(positions == sorted(positions) for positions in written)
        assert sum(one_batches) + sum(two_batches) == 16 * 15
        assert max(one_batches + two_batches) > 1  # something was coalesced
        stored = await one.read_all(0, 1000)
        assert [e.position for e in stored] == every
    finally:
        await two.close()
        await one.close()
    assert await chain_faults(url) == []


# An append: (stream index, expectation: None = ANY, -1 = NO_STREAM, else exact version).
APPENDS = st.lists(
    st.tuples(st.integers(0, 2), st.one_of(st.none(), st.integers(-1, 3)), st.integers(1, 3)),
    min_size=1,
    max_size=12,
)


def model(appends: list[tuple[int, int | None, int]]) -> list[tuple[int, int] | None]:
    """The serial answer: (first, last version) per append, None for a conflict."""
    heads = [0, 0, 0]
    answers: list[tuple[int, int] | None] = []
    for stream, expected, count in appends:
        head = heads[stream]
        if expected is None or (expected == -1 and head == 0) or expected == head:
            heads[stream] = head + count
            answers.append((head + 1, head + count))
        else:
            answers.append(None)
    return answers


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(appends=APPENDS)
def test_a_batch_equals_the_same_appends_one_by_one(
    pg_dsn: str,  # noqa: F811
    appends: list[tuple[int, int | None, int]],
) -> None:
    async def body() -> None:
        store, batches = await opened(fresh_url(pg_dsn))
        tag = uuid.uuid4().hex[:8]
        try:
            results = await outcomes(
                [
                    store.append(
                        f"{tag}-{stream}",
                        [NewEvent("e", {"n": n}) for n in range(count)],
                        ExpectedState.ANY
                        if expected is None
                        else ExpectedState.NO_STREAM
                        if expected == -1
                        else expected,
                    )
                    for stream, expected, count in appends
                ]
            )
            wanted = model(appends)
            got = [
                None if isinstance(r, WrongExpectedVersion) else (r.first_version, r.last_version)
                for r in results
            ]
            assert got == wanted
            written = [r for r in results if isinstance(r, AppendResult)]
            assert len(batches) <= 1 and sum(batches) == len(written)
            events = await store.read_all(0, 1000)
            assert [e.position for e in events] == list(range(1, len(events) + 1))
            assert [r.last_position for r in written] == sorted(r.last_position for r in written)
        finally:
            await store.close()

    asyncio.run(body())


async def test_one_new_id_twice_in_one_batch(pg_dsn: str) -> None:  # noqa: F811
    """The batch's single INSERT refuses it; re-sent one by one, each append gets the
    answer it would get alone: the first is written, a retry of it gets its result, a
    clash on another stream is refused."""
    url = fresh_url(pg_dsn)
    store, batches = await opened(url)
    try:
        first, again, clash = await outcomes(
            [
                store.append("s", [NewEvent("a", {"i": 1}, event_id="id-twice")]),
                store.append("s", [NewEvent("a", {"i": 1}, event_id="id-twice")]),
                store.append("t", [NewEvent("a", {"i": 1}, event_id="id-twice")]),
            ]
        )
        assert first == AppendResult("s", 1, 1, 1)
        assert again == first
        assert isinstance(clash, DuplicateEventId)
        assert batches == [1]  # the one-by-one fallback wrote the one event
        assert [(e.stream_id, e.position) for e in await store.read_all(0, 10)] == [("s", 1)]
    finally:
        await store.close()
    assert await chain_faults(url) == []


async def test_commit_connection_lost_is_replaced(pg_dsn: str) -> None:  # noqa: F811
    """Killing the group commit's own connection fails at most the batch in flight;
    the next append reconnects, and the log stays gapless and chained."""
    url = fresh_url(pg_dsn)
    store, _ = await opened(url)
    try:
        await store.append("s", [NewEvent("a", {"i": 0})])
        writer = store._writer
        assert writer is not None
        await admin(pg_dsn, f"SELECT pg_terminate_backend({writer.get_server_pid()})")
        written = 1
        for i in range(1, 4):
            try:
                await store.append("s", [NewEvent("a", {"i": i})])
                written += 1
            except StoreUnavailable:
                assert i == 1  # only the first append after the kill may see it
        assert written >= 3
        assert store._writer is not None and store._writer is not writer
        events = await store.read_all(0, 10)
        assert [e.position for e in events] == list(range(1, written + 1))
    finally:
        await store.close()
    assert await chain_faults(url) == []
