"""NUL in text that reaches SQL on PostgreSQL, whose text type cannot hold it.

An event type or id with NUL failed the whole group commit (each append was then
re-sent alone) and surfaced as asyncpg's CharacterNotInRepertoireError: a 500 over
HTTP. It is now refused as `InvalidEvent` before anything is queued. A read filtered
by a type with NUL raised the same error; no stored type can contain NUL there, so
such a type matches nothing."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import InvalidEvent, NewEvent, open_store
from eventstore.postgres import PostgresStore
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres

with_nul = st.tuples(st.text(max_size=5), st.text(max_size=5)).map(lambda p: f"{p[0]}\x00{p[1]}")


async def opened(url: str) -> tuple[PostgresStore, list[int]]:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    batches: list[int] = []
    store.on_commit.append(lambda appends, _seconds: batches.append(appends))
    return store, batches


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=with_nul, where=st.sampled_from(["type", "event_id"]))
def test_nul_in_type_or_id_is_refused_and_batch_mates_commit_together(
    pg_dsn: str,  # noqa: F811
    bad: str,
    where: str,
) -> None:
    async def run() -> None:
        store, batches = await opened(fresh_url(pg_dsn))
        try:
            event = NewEvent("t", {}, event_id=bad) if where == "event_id" else NewEvent(bad, {})
            outcomes = await asyncio.gather(
                store.append("a", [NewEvent("t", {"i": 1})]),
                store.append("b", [event]),
                store.append("c", [NewEvent("t", {"i": 3})]),
                return_exceptions=True,
            )
            assert isinstance(outcomes[1], InvalidEvent) and "NUL" in str(outcomes[1])
            assert not isinstance(outcomes[0], BaseException)
            assert not isinstance(outcomes[2], BaseException)
            assert batches == [2]  # one commit, not a fallback to one append at a time
            assert [e.stream_id for e in await store.read_all(0, 10)] == ["a", "c"]
        finally:
            await store.close()

    asyncio.run(run())


async def test_read_filters_with_nul_types_match_nothing(pg_dsn: str) -> None:  # noqa: F811
    store, _ = await opened(fresh_url(pg_dsn))
    try:
        await store.append("s", [NewEvent("a", {}), NewEvent("b", {})])
        assert await store.read_all(0, 10, types=["a\x00"]) == []
        assert [e.type for e in await store.read_all(0, 10, types=["a\x00", "b"])] == ["b"]
        assert await store.read_positions("s", limit=10, types=["\x00"]) == []
        page = await store.read_positions("s", limit=10, types=["b", "x\x00y"])
        assert [e.type for e in page] == ["b"]
        assert [e.type for e in await store.read_all(0, 10, types=[])] == ["a", "b"]
    finally:
        await store.close()


async def test_checkpoint_names_with_nul(pg_dsn: str) -> None:  # noqa: F811
    store, _ = await opened(fresh_url(pg_dsn))
    try:
        with pytest.raises(InvalidEvent, match="NUL"):
            await store.save_checkpoint("c\x00p", 0, b"state")
        with pytest.raises(InvalidEvent, match="NUL"):  # refused as on SQLite
            await store.load_checkpoint("c\x00p")
        with pytest.raises(InvalidEvent):
            await store.stream_info("s\x00")
    finally:
        await store.close()
