"""The contract every event-store backend must meet.

A backend's test module subclasses `StoreContract` and implements `open_fresh`
(a new, empty store). Nothing here knows which backend it is testing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ANY,
    EXISTS,
    MAX_EVENTS_PER_APPEND,
    NO_STREAM,
    DuplicateEventId,
    EventStore,
    EventStoreError,
    InvalidEvent,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
    WrongExpectedVersion,
)


def ev(type_: str = "thing_happened", **data: object) -> NewEvent:
    return NewEvent(type=type_, data=data)


class FreshStore:
    """A fresh store per test (`store` fixture) or per hypothesis example (`run_fresh`):
    subclass and implement `open_fresh`."""

    async def open_fresh(self) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = await self.open_fresh()
        try:
            yield store
        finally:
            await store.close()

    def run_fresh(self, body: object) -> None:
        """Run `body(store)` on a fresh store in its own loop (for hypothesis examples)."""

        async def go() -> None:
            store = await self.open_fresh()
            try:
                await body(store)  # type: ignore[operator]
            finally:
                await store.close()

        asyncio.run(go())


class StoreContract(FreshStore):
    """Subclass and implement `open_fresh`."""

    # ---- append and expected versions ------------------------------------------

    async def test_append_assigns_versions_and_positions(self, store: EventStore) -> None:
        r1 = await store.append("s-1", [ev(i=1), ev(i=2)], expected=NO_STREAM)
        assert (r1.first_version, r1.last_version, r1.last_position) == (1, 2, 2)
        r2 = await store.append("s-2", [ev(i=3)])
        assert (r2.first_version, r2.last_version, r2.last_position) == (1, 1, 3)
        r3 = await store.append("s-1", [ev(i=4)], expected=2)
        assert (r3.first_version, r3.last_version, r3.last_position) == (3, 3, 4)
        events = await store.read("s-1")
        assert [e.version for e in events] == [1, 2, 3]
        assert [e.position for e in events] == [1, 2, 4]
        assert [e.data["i"] for e in events] == [1, 2, 4]
        assert all(e.stream_id == "s-1" and e.type == "thing_happened" for e in events)

    async def test_recorded_event_fields(self, store: EventStore) -> None:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        eid = uuid.uuid4()
        await store.append("s", [NewEvent("t", {"a": [1, "x"]}, {"who": "me"}, eid)])
        (e,) = await store.read("s")
        assert e.event_id == str(eid)
        assert e.data == {"a": [1, "x"]} and e.metadata == {"who": "me"}
        assert e.data_json == b'{"a":[1,"x"]}'
        assert e.recorded_at.tzinfo is not None and e.recorded_at.utcoffset() == dt.timedelta(0)
        assert before <= e.recorded_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    async def test_event_id_defaults_to_fresh_uuid(self, store: EventStore) -> None:
        await store.append("s", [ev(), ev()])
        ids = [e.event_id for e in await store.read("s")]
        assert len(set(ids)) == 2
        assert all(uuid.UUID(i) for i in ids)

    async def test_no_stream_on_existing_stream_conflicts(self, store: EventStore) -> None:
        await store.append("s", [ev()])
        with pytest.raises(WrongExpectedVersion) as info:
            await store.append("s", [ev()], expected=NO_STREAM)
        assert info.value.actual == 1
        assert len(await store.read("s")) == 1

    async def test_exists_on_missing_stream_conflicts(self, store: EventStore) -> None:
        with pytest.raises(WrongExpectedVersion) as info:
            await store.append("nope", [ev()], expected=EXISTS)
        assert info.value.actual == 0
        await store.append("s", [ev()])
        r = await store.append("s", [ev()], expected=EXISTS)
        assert r.last_version == 2

    async def test_exact_version_conflicts_report_current(self, store: EventStore) -> None:
        await store.append("s", [ev(), ev(), ev()])
        with pytest.raises(WrongExpectedVersion) as info:
            await store.append("s", [ev()], expected=1)
        assert (info.value.expected, info.value.actual) == (1, 3)
        with pytest.raises(WrongExpectedVersion):
            await store.append("s", [ev()], expected=4)
        assert (await store.tail("s", 10)).total == 3
        assert (await store.append("s", [ev()], expected=3)).last_version == 4

    async def test_expected_zero_means_empty_stream(self, store: EventStore) -> None:
        assert (await store.append("s", [ev()], expected=0)).first_version == 1
        with pytest.raises(WrongExpectedVersion):
            await store.append("s", [ev()], expected=0)

    async def test_concurrent_conflict_fails_only_that_append(self, store: EventStore) -> None:
        await store.append("hot", [ev()])
        results = await asyncio.gather(
            *[store.append("hot", [ev(n=i)], expected=1) for i in range(10)],
            *[store.append(f"cold-{i}", [ev(n=i)]) for i in range(10)],
            return_exceptions=True,
        )
        hot, cold = results[:10], results[10:]
        assert sum(not isinstance(r, BaseException) for r in hot) == 1
        assert all(isinstance(r, WrongExpectedVersion) for r in hot if isinstance(r, BaseException))
        assert not any(isinstance(r, BaseException) for r in cold)
        assert (await store.tail("hot", 5)).total == 2

    # ---- idempotency -------------------------------------------------------------

    async def test_retry_with_same_ids_returns_original(self, store: EventStore) -> None:
        batch = [NewEvent("t", {"i": i}, event_id=str(uuid.uuid4())) for i in range(3)]
        first = await store.append("s", batch, expected=NO_STREAM)
        await store.append("s", [ev()])  # the stream moves on
        again = await store.append("s", batch, expected=NO_STREAM)
        assert again == first
        any_again = await store.append("s", batch, expected=ANY)
        assert any_again == first
        exact_again = await store.append("s", batch, expected=0)
        assert exact_again == first
        assert (await store.tail("s", 10)).total == 4
        # only the call that wrote says so (a producer answers 201 or 200 by it)
        assert first.written
        assert not (again.written or any_again.written or exact_again.written)

    async def test_concurrent_identical_appends_write_once_and_say_which(
        self, store: EventStore
    ) -> None:
        """Copies of one append sent at once (a client retrying before its first answer):
        one writes, every other gets the same result marked not written, whether it
        lands in the same commit as the first or in a later one."""
        for round_ in range(5):
            batch = [NewEvent("t", {"i": i}, event_id=str(uuid.uuid4())) for i in range(2)]
            copies = 2 + round_ * 3
            results = await asyncio.gather(
                *[store.append(f"c{round_}", batch, expected=ANY) for _ in range(copies)]
            )
            assert len(set(results)) == 1  # all equal: the one place the events are
            assert [r.written for r in results].count(True) == 1
            assert (await store.tail(f"c{round_}", 10)).total == 2

    async def test_same_ids_elsewhere_is_an_error(self, store: EventStore) -> None:
        eid = str(uuid.uuid4())
        await store.append("a", [NewEvent("t", {}, event_id=eid)])
        with pytest.raises(DuplicateEventId):
            await store.append("b", [NewEvent("t", {}, event_id=eid)])
        with pytest.raises(DuplicateEventId):  # same stream, different place
            await store.append("a", [NewEvent("t", {}, event_id=eid)], expected=1)
        with pytest.raises(DuplicateEventId):  # partly stored
            await store.append("a", [NewEvent("t", {}, event_id=eid), ev()])
        assert (await store.tail("a", 10)).total == 1
        assert await store.read("b") == []

    # ---- bad input -------------------------------------------------------------------

    @pytest.mark.parametrize(
        "events",
        [
            [],
            [NewEvent("", {})],
            [NewEvent("   ", {})],
            [NewEvent("t", {"x": object()})],
            [NewEvent("t", {"x": {1, 2}})],
            [NewEvent("t", b"{not json")],
            [NewEvent("t", {}, event_id="")],
            [NewEvent("t", {}, event_id="same"), NewEvent("t", {}, event_id="same")],
            [NewEvent("t", {"big": "x" * (1024 * 1024)})],
            ["not an event"],
            [NewEvent("t\ud800", {})],  # a lone surrogate: no encoder takes it
            [NewEvent("t", {}, event_id="e\udfff")],
            [NewEvent("t\x00", {})],  # NUL: PostgreSQL's text cannot hold it
            [NewEvent("t", {}, event_id="e\x00")],
        ],
    )
    async def test_bad_events_raise_and_write_nothing(
        self, store: EventStore, events: list[NewEvent]
    ) -> None:
        with pytest.raises(InvalidEvent):
            await store.append("s", events)
        assert await store.head_position() == 0
        assert await store.stream_info("s") is None

    async def test_bad_arguments(self, store: EventStore) -> None:
        with pytest.raises(InvalidEvent):
            await store.append("s", [ev()], expected=-1)
        with pytest.raises(InvalidEvent):
            await store.append("s", [ev()], expected="1")  # type: ignore[arg-type]
        with pytest.raises(InvalidEvent):
            await store.append("", [ev()])
        with pytest.raises(InvalidEvent):
            await store.append("s", [ev()] * (MAX_EVENTS_PER_APPEND + 1))
        with pytest.raises(InvalidEvent):
            await store.tail("s", -1)
        with pytest.raises(InvalidEvent):
            await store.append("s\ud800", [ev()])
        with pytest.raises(InvalidEvent):
            await store.append("s\x00", [ev()])
        with pytest.raises(InvalidEvent):
            await store.append("s", [ev()], expected=2**63)  # past what a backend stores
        assert await store.head_position() == 0

    async def test_nothing_is_archived_in_a_log_never_archived(self, store: EventStore) -> None:
        await store.append("s", [ev(), ev()])
        assert not await store.archived_after(0)
        assert not await store.archived_after(0, "s")
        with pytest.raises(InvalidEvent):
            await store.archived_after(-1)
        with pytest.raises(InvalidEvent):
            await store.archived_after(0, "")

    async def test_bad_input_among_concurrent_appends_fails_only_itself(
        self, store: EventStore
    ) -> None:
        """Refused before it joins a group commit: its neighbours in the same batch are
        written, the log stays gapless."""
        bad = [
            store.append("s\ud800", [ev()]),
            store.append("s", [NewEvent("t\ud800", {})]),
            store.save_checkpoint("p", 2**63, b"x"),
            store.save_checkpoint(("p",), 1, b"x"),  # type: ignore[arg-type]
            store.save_checkpoint("p\ud800", 1, b"x"),
        ]
        outcomes = await asyncio.gather(
            *[store.append(f"ok-{i}", [ev()]) for i in range(5)], *bad, return_exceptions=True
        )
        assert [type(o) for o in outcomes[5:]] == [InvalidEvent] * 5, outcomes[5:]
        assert sorted(o.last_position for o in outcomes[:5]) == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        assert await store.load_checkpoint("p") is None

    async def test_a_close_cancelled_while_it_drains_runs_to_its_end(self) -> None:
        """Queued appends are written and answered; a later close waits for the same
        closing instead of returning with the store half closed."""
        store = await self.open_fresh()
        appends = [asyncio.ensure_future(store.append("t", [ev()])) for _ in range(50)]
        await asyncio.sleep(0)
        closer = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        closer.cancel()
        await asyncio.gather(closer, return_exceptions=True)
        await asyncio.wait_for(store.close(), 30)  # bounds only a hang
        results = await asyncio.wait_for(asyncio.gather(*appends), 30)
        assert sorted(r.last_position for r in results) == list(range(1, 51))
        with pytest.raises(EventStoreError):
            await store.append("t", [ev()])

    async def test_a_failing_commit_hook_does_not_hold_the_acknowledgement(
        self, store: EventStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the appends it followed are durable and their
        callers hear so, and later commits run on."""

        def broken(appends: int, seconds: float) -> None:
            raise RuntimeError("hook bug")

        store.on_commit.append(broken)
        first = await asyncio.wait_for(
            asyncio.gather(*[store.append(f"h-{i}", [ev()]) for i in range(3)]), 30
        )
        again = await asyncio.wait_for(store.append("h-later", [ev()]), 30)
        assert sorted(r.last_position for r in first) == [1, 2, 3] and again.last_position == 4
        assert "on_commit hook" in caplog.text and "hook bug" in caplog.text

    async def test_largest_allowed_batch(self, store: EventStore) -> None:
        r = await store.append("s", [ev(i=i) for i in range(MAX_EVENTS_PER_APPEND)])
        assert r.last_version == MAX_EVENTS_PER_APPEND

    async def test_precoded_json_bytes_pass_through(self, store: EventStore) -> None:
        await store.append("s", [NewEvent("t", b'{"z": 1,  "a": 2}')])
        (e,) = await store.read("s")
        assert e.data_json == b'{"z": 1,  "a": 2}' and e.data == {"z": 1, "a": 2}

    # ---- reads ---------------------------------------------------------------------

    async def test_tail_and_total(self, store: EventStore) -> None:
        assert (await store.tail("none", 5)).total == 0
        await store.append("s", [ev(i=i) for i in range(1, 11)])
        await store.append("other", [ev()])
        page = await store.tail("s", 3)
        assert page.total == 10
        assert [e.data["i"] for e in page.events] == [8, 9, 10]
        assert (await store.tail("s", 0)).events == []
        assert (await store.tail("s", 0)).total == 10
        assert len((await store.tail("s", 100)).events) == 10

    async def test_read_forwards_backwards_and_limits(self, store: EventStore) -> None:
        await store.append("s", [ev(i=i) for i in range(1, 8)])
        assert [e.version for e in await store.read("s", after_version=4)] == [5, 6, 7]
        assert [e.version for e in await store.read("s", limit=2)] == [1, 2]
        assert [e.version for e in await store.read("s", backwards=True, limit=3)] == [7, 6, 5]
        back = await store.read("s", after_version=5, backwards=True)
        assert [e.version for e in back] == [4, 3, 2, 1]
        assert await store.read("missing") == []

    async def test_read_positions_window_and_types(self, store: EventStore) -> None:
        for i in range(6):
            await store.append("s", [ev("odd" if i % 2 else "even", i=i)])
            await store.append("noise", [ev()])
        positions = [e.position for e in await store.read("s")]
        window = await store.read_positions(
            "s", after_position=positions[0], before_position=positions[4], limit=10
        )
        assert [e.position for e in window] == positions[1:4]
        newest = await store.read_positions("s", limit=2, newest_first=True)
        assert [e.position for e in newest] == positions[-1:-3:-1]
        odd = await store.read_positions("s", limit=10, types=["odd"])
        assert [e.data["i"] for e in odd] == [1, 3, 5]

    async def test_read_all_is_global_commit_order(self, store: EventStore) -> None:
        await store.append("a", [ev(i=1)])
        await store.append("b", [ev(i=2), ev(i=3)])
        await store.append("a", [ev(i=4)])
        log = await store.read_all()
        assert [(e.stream_id, e.position) for e in log] == [("a", 1), ("b", 2), ("b", 3), ("a", 4)]
        assert [e.position for e in await store.read_all(after_position=2, limit=1)] == [3]
        assert await store.head_position() == 4
        only = await store.read_all(types=["nothing"])
        assert only == []

    async def test_stream_info(self, store: EventStore) -> None:
        assert await store.stream_info("s") is None
        await store.append("s", [ev(), ev()])
        info = await store.stream_info("s")
        assert info is not None
        assert (info.head_version, info.head_position, info.deleted) == (2, 2, False)

    # ---- delete ----------------------------------------------------------------------

    async def test_delete_tombstones_and_erases(self, store: EventStore) -> None:
        await store.append("gone", [ev(secret="x"), ev()])
        await store.append("kept", [ev()])
        await store.delete_stream("gone")
        with pytest.raises(StreamDeleted):
            await store.append("gone", [ev()])
        with pytest.raises(StreamDeleted):
            await store.read("gone")
        with pytest.raises(StreamDeleted):
            await store.tail("gone", 5)
        with pytest.raises(StreamDeleted):
            await store.tail_json("gone", 5)
        assert [e.stream_id for e in await store.read_all()] == ["kept"]
        info = await store.stream_info("gone")
        assert info is not None and info.deleted and info.erased_events == 2
        r = await store.append("kept", [ev()])
        assert r.last_position == 4  # positions are never reused

    # ---- hash chain ------------------------------------------------------------------

    async def test_chain_head_follows_appends_and_survives_erase(self, store: EventStore) -> None:
        empty = await store.chain_head()
        assert (empty.position, empty.hash) == (0, bytes(32))
        await store.append("a", [ev(i=1), ev(i=2)])
        two = await store.chain_head()
        assert two.position == 2 and len(two.hash) == 32 and two.hash != empty.hash
        with pytest.raises(WrongExpectedVersion):
            await store.append("a", [ev()], expected=0)  # a refused append leaves no link
        assert await store.chain_head() == two
        await store.append("gone", [ev()])
        three = await store.chain_head()
        await store.delete_stream("gone")
        assert await store.chain_head() == three  # erase removes content, not links
        await store.append("a", [ev()])
        assert (await store.chain_head()).position == 4

    # ---- archiving (truncate-before: tools/archive.py) ---------------------------------

    async def test_archive_cut_keeps_versions_positions_and_the_chain(
        self, store: EventStore
    ) -> None:
        await store.append("s", [ev(i=i) for i in range(5)])  # positions 1-5
        await store.append("t", [ev(i=9)])  # 6
        chain = await store.chain_head()
        first = [tuple(r) for r in await store.archive_rows("s", 4)]
        assert [(r[0], r[2]) for r in first] == [(1, 1), (2, 2), (3, 3)]
        with pytest.raises(InvalidEvent):
            await store.archive_before("s", 4, 2)  # not the planned count: nothing goes
        assert len(await store.read("s")) == 5
        assert await store.archive_before("s", 4, 3) == 3
        assert [e.version for e in await store.read("s")] == [4, 5]
        assert [e.version for e in await store.read("s", backwards=True)] == [5, 4]
        page = await store.tail("s", 10)
        assert page.total == 5 and [e.version for e in page.events] == [4, 5]
        assert [e.position for e in await store.read_positions("s", limit=10)] == [4, 5]
        assert [e.position for e in await store.read_all(0)] == [4, 5, 6]
        info = await store.stream_info("s")
        assert info is not None and (info.head_version, info.head_position) == (5, 5)
        assert info.truncated_before == 4 and not info.deleted
        assert await store.chain_head() == chain and await store.head_position() == 6
        assert await store.archived_after(0) and await store.archived_after(2, "s")
        assert not await store.archived_after(3, "s") and not await store.archived_after(0, "t")

        # archived whole: the head stays, so versions and positions go on from it
        second = [tuple(r) for r in await store.archive_rows("s", 6)]
        assert await store.archive_before("s", 6, 2) == 2
        assert await store.read("s") == [] and (await store.tail("s", 3)).total == 5
        info = await store.stream_info("s")
        assert info is not None and (info.head_version, info.head_position) == (5, 5)
        assert info.truncated_before == 6
        with pytest.raises(WrongExpectedVersion):
            await store.append("s", [ev()], expected=NO_STREAM)
        r = await store.append("s", [ev()], expected=5)
        assert (r.first_version, r.last_position) == (6, 7)
        await store.append("u", [ev()])  # 8, the newest position: archived, never reused
        assert await store.archive_before("u", 2, 1) == 1
        assert await store.head_position() == 8
        assert (await store.append("v", [ev()])).last_position == 9

        # back, newest archive first, each row checked against the link it left
        bad = list(second[0])
        bad[5] = b'{"i": 99}'
        with pytest.raises(InvalidEvent):
            await store.restore_archived("s", [tuple(bad), second[1]])
        assert [e.version for e in await store.read("s")] == [6]
        assert await store.restore_archived("s", second) == 2
        assert await store.restore_archived("s", first) == 3
        assert [e.version for e in await store.read("s")] == [1, 2, 3, 4, 5, 6]
        info = await store.stream_info("s")
        assert info is not None and info.truncated_before == 0 and info.head_version == 6
        assert not await store.archived_after(0, "s") and await store.archived_after(0)

        # an erased stream's archived links are not archived events; its head stays
        await store.delete_stream("u")
        info = await store.stream_info("u")
        assert info is not None and info.deleted and info.head_version == 1
        assert not await store.archived_after(0)
        with pytest.raises(InvalidEvent):
            await store.archive_before("u", 2, 0)

    # ---- checkpoints --------------------------------------------------------------

    @pytest.mark.parametrize(
        ("name", "position"), [("", 1), (b"p", 1), ("p\ud800", 1), ("x" * 257, 1), ("p", -1)]
    )
    async def test_bad_checkpoint_arguments(
        self, store: EventStore, name: str, position: int
    ) -> None:
        with pytest.raises(InvalidEvent):
            await store.save_checkpoint(name, position, b"state")
        assert await store.load_checkpoint("p") is None

    async def test_checkpoints_round_trip(self, store: EventStore) -> None:
        assert await store.load_checkpoint("p") is None
        await store.save_checkpoint("p", 5, b"state-1")
        await store.save_checkpoint("p", 9, b"state-2")
        cp = await store.load_checkpoint("p")
        assert cp is not None and (cp.position, cp.state) == (9, b"state-2")

    async def test_large_checkpoints_round_trip_while_appends_commit(
        self, store: EventStore
    ) -> None:
        """Sizes around and far past the size SQLite splits at (256 KiB), each save
        overlapping appends; the last save is what loads, byte for byte."""
        sizes = [3 * 262_144 + 7, 262_144, 262_145, 0, 1_000_003, 5]
        for i, size in enumerate(sizes):
            state = bytes((i + j) % 251 for j in range(size))
            saving = asyncio.ensure_future(store.save_checkpoint("big", i, state))
            results = await asyncio.gather(*[store.append(f"cp-{i}", [ev(j=j)]) for j in range(20)])
            await saving
            versions = [r.first_version for r in results]
            assert versions == list(range(1, 21)), versions
            cp = await store.load_checkpoint("big")
            assert cp is not None and (cp.position, cp.state) == (i, state)
        other = await store.load_checkpoint("other")
        assert other is None

    # ---- leases ------------------------------------------------------------------------

    async def test_lease_grant_renew_and_fence(self, store: EventStore) -> None:
        leases = store.leases
        a = await leases.acquire("node:a", "a", 30)
        assert a is not None and a.fence == 1 and a.owner == "a"
        assert await leases.acquire("node:a", "b", 30) is None  # held by a live owner
        again = await leases.acquire("node:a", "a", 30)  # re-acquire by the holder: same fence
        assert again is not None and again.fence == 1
        renewed = await leases.renew(a, 60)
        assert renewed is not None and renewed.expires_at > a.expires_at - 1
        assert await leases.is_current(a)
        assert [h.name for h in await leases.holders("node:")] == ["node:a"]

    async def test_expired_lease_moves_with_a_new_fence(self, store: EventStore) -> None:
        leases = store.leases
        old = await leases.acquire("fire:x", "a", 0.05)
        assert old is not None
        await asyncio.sleep(0.2)
        assert not await leases.is_current(old)
        new = await leases.acquire("fire:x", "b", 30)
        assert new is not None and new.owner == "b" and new.fence == old.fence + 1
        assert await leases.renew(old, 30) is None  # the old holder is fenced off
        await leases.release(old)  # a stale release changes nothing
        assert await leases.is_current(new)
        await leases.release(new)
        assert not await leases.is_current(new)
        assert await leases.holders("fire:") == []

    async def test_claim_many_skips_held_names(self, store: EventStore) -> None:
        leases = store.leases
        assert await leases.acquire("t:2", "other", 30) is not None
        got = await leases.claim(["t:1", "t:2", "t:3", "t:1"], "me", 30)
        assert [(g.name, g.owner) for g in got] == [("t:1", "me"), ("t:3", "me")]

    async def test_concurrent_claims_grant_each_name_once(self, store: EventStore) -> None:
        names = [f"due:{i}" for i in range(20)]
        results = await asyncio.gather(
            *[store.leases.claim(names, f"node-{n}", 30) for n in range(4)]
        )
        granted = [lease.name for result in results for lease in result]
        assert sorted(granted) == sorted(names)

    async def test_concurrent_acquires_each_get_their_own_answer(self, store: EventStore) -> None:
        """Single-name acquires made at once (coalesced on PostgreSQL) act one by one:
        each name goes to exactly one owner, a repeat by the holder gets the same fence,
        and the releases made at once free every name."""
        leases = store.leases
        owners = ["a", "b", "a", "c"]
        names = [f"fire:s{i % 10}" for i in range(40)]
        got = await asyncio.gather(
            *[leases.acquire(name, owners[i % 4], 30) for i, name in enumerate(names)]
        )
        holders = {h.name: h for h in await leases.holders("fire:")}
        assert sorted(holders) == sorted(set(names))
        for name, owner, lease in zip(names, [owners[i % 4] for i in range(40)], got, strict=True):
            if owner == holders[name].owner:
                assert lease is not None
                assert (lease.owner, lease.fence) == (owner, holders[name].fence)
            else:
                assert lease is None
        await asyncio.gather(*[leases.release(lease) for lease in got if lease is not None])
        assert await leases.holders("fire:") == []

    async def test_bad_lease_arguments(self, store: EventStore) -> None:
        with pytest.raises(InvalidEvent):
            await store.leases.acquire("", "a", 1)
        with pytest.raises(InvalidEvent):
            await store.leases.acquire("l\ud800", "a", 1)
        with pytest.raises(InvalidEvent):
            await store.leases.acquire("x", "", 1)
        with pytest.raises(InvalidEvent):
            await store.leases.acquire("x", "a", 0)
        assert await store.leases.holders() == []

    # ---- subscribe ---------------------------------------------------------------------

    async def test_subscribe_catch_up_then_live(self, store: EventStore) -> None:
        for i in range(5):
            await store.append(f"s{i % 2}", [ev(i=i)])
        seen: list[RecordedEvent] = []

        async def consume() -> None:
            async for e in store.subscribe(after_position=2):
                seen.append(e)
                if len(seen) == 8:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        for i in range(5):
            await store.append("live", [ev(i=100 + i)])
        await asyncio.wait_for(task, 10)
        assert [e.position for e in seen] == list(range(3, 11))

    async def test_subscribe_with_type_filter_moves_past_gaps(self, store: EventStore) -> None:
        await store.append("s", [ev("noise")] * 3)
        got: list[RecordedEvent] = []

        async def consume() -> None:
            async for e in store.subscribe(types=["signal"]):
                got.append(e)
                return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await store.append("s", [ev("noise"), ev("signal", k=1)])
        await asyncio.wait_for(task, 10)
        assert [(e.type, e.position) for e in got] == [("signal", 5)]

    # ---- properties ----------------------------------------------------------------

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=0, max_size=8),
        n=st.integers(min_value=0, max_value=200),
    )
    def test_property_tail_equals_end_of_full_read(self, sizes: list[int], n: int) -> None:
        async def body(store: EventStore) -> None:
            for batch, size in enumerate(sizes):
                await store.append("s", [ev(b=batch, k=k) for k in range(size)])
                await store.append("noise", [ev()])
            full = await store.read("s")
            page = await store.tail("s", n)
            assert page.total == len(full) == sum(sizes)
            assert page.events == (full[-n:] if n else [])
            served = await store.tail_json("s", n)
            assert served.total == page.total
            assert served.rows == [
                (e.position, e.version, e.type, e.data_json) for e in page.events
            ]

        self.run_fresh(body)

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        plan=st.lists(
            st.tuples(st.integers(min_value=0, max_value=7), st.integers(1, 5)),
            min_size=1,
            max_size=60,
        )
    )
    def test_property_concurrent_appends_gapless_commit_order(
        self, plan: list[tuple[int, int]]
    ) -> None:
        async def body(store: EventStore) -> None:
            results = await asyncio.gather(
                *[store.append(f"s{s}", [ev(k=k) for k in range(n)]) for s, n in plan]
            )
            log = await store.read_all(limit=10_000)
            assert [e.position for e in log] == list(range(1, sum(n for _, n in plan) + 1))
            by_place = {(e.stream_id, e.version): e.position for e in log}
            for r in results:  # each append's events sit together in the log
                positions = [
                    by_place[(r.stream_id, v)] for v in range(r.first_version, r.last_version + 1)
                ]
                count = r.last_version - r.first_version + 1
                assert positions == list(range(r.last_position - count + 1, r.last_position + 1))
            by_stream: dict[str, list[int]] = {}
            for e in log:
                by_stream.setdefault(e.stream_id, []).append(e.version)
            for versions in by_stream.values():  # commit order agrees with versions
                assert versions == sorted(versions)

        self.run_fresh(body)
