"""The consumer-group contract every store backend must meet (SQLite and PostgreSQL).

A backend's test module subclasses `SubscriptionsContract` and implements
`new_location()` (where a fresh store lives) and `open_at(location)` (open, or
reopen after a "restart", the store there). Time is passed in by hand, so
timeouts are exact and nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.core.subscriptions import RULES
from eventstore import EventStore, InvalidEvent, NewEvent
from eventstore.subscriptions import Delivery, GroupSettings, Subscriptions, parse_delivery_id

T0 = 1_800_000_000.0


def ev(type_: str = "work", **data: object) -> NewEvent:
    return NewEvent(type=type_, data=data)


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.delivery_id for d in deliveries]


def positions(deliveries: list[Delivery]) -> list[int]:
    return [d.event.position for d in deliveries]


class SubscriptionsContract:
    """Subclass and implement `new_location` and `open_at`."""

    def new_location(self) -> str:
        raise NotImplementedError

    async def open_at(self, location: str) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        store = await self.open_at(self.new_location())
        try:
            yield store
        finally:
            await store.close()

    async def claim(
        self,
        subs: Subscriptions,
        limit: int = 10,
        now: float = T0,
        worker: str = "w",
        group: str = "g",
    ) -> list[Delivery]:
        got = await subs.claim(group, worker, limit, now, RULES)
        assert got is not None
        return got

    # ---- groups ----------------------------------------------------------------------

    async def test_put_get_list_delete(self, store: EventStore) -> None:
        subs = store.subscriptions
        assert await subs.get_group("g") is None
        assert await subs.put_group("g", GroupSettings(types=("a",)), 0) is True
        assert await subs.put_group("g", GroupSettings(max_retries=1), 7) is False
        group = await subs.get_group("g")
        assert group is not None
        assert group.settings == GroupSettings(max_retries=1)
        assert group.cursor == 0  # an update keeps the cursor
        assert [g.name for g in await subs.list_groups()] == ["g"]
        assert await subs.delete_group("g") is True
        assert await subs.delete_group("g") is False
        assert await subs.claim("g", "w", 1, T0, RULES) is None
        assert await subs.ack("g", ["1:1"]) is None

    async def test_from_end_skips_what_is_already_there(self, store: EventStore) -> None:
        await store.append("s1", [ev(), ev()])
        await store.subscriptions.put_group("g", GroupSettings(), None)
        assert await self.claim(store.subscriptions) == []
        r = await store.append("s1", [ev()])
        assert positions(await self.claim(store.subscriptions)) == [r.last_position]

    async def test_from_position(self, store: EventStore) -> None:
        await store.append("s1", [ev(), ev(), ev()])
        await store.subscriptions.put_group("g", GroupSettings(ordering="none"), 1)
        assert positions(await self.claim(store.subscriptions)) == [2, 3]

    async def test_a_start_outside_int64_is_refused(self, store: EventStore) -> None:
        for start in (-1, 2**63, 2**64 - 1):
            with pytest.raises(InvalidEvent):
                await store.subscriptions.put_group("g", GroupSettings(), start)
        assert await store.subscriptions.get_group("g") is None

    async def test_ids_that_are_not_ours_are_unknown_and_harm_no_append(
        self, store: EventStore
    ) -> None:
        """'²' passes str.isdigit and 20 digits overflow int64: raised inside SQLite's
        writer job, either failed the whole group commit, appends riding in it too."""
        await store.append("s1", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(), 0)
        [got] = await self.claim(subs)
        odd = ["\u00b2:1", "1:\u00b2", "99999999999999999999:1", f"1:{2**63}"]
        acked, nacked, appended = await asyncio.gather(
            subs.ack("g", odd),
            subs.nack("g", odd, "park", "", T0, 0.0, RULES),
            store.append("s2", [ev()]),
        )
        assert acked == odd and nacked == odd
        assert appended.last_position == 2
        assert await subs.ack("g", [got.delivery_id]) == []

    async def test_a_group_made_again_does_not_take_the_old_groups_delivery_ids(
        self, store: EventStore
    ) -> None:
        """Deleted and made again under its name, a group counts hand-outs from 1 again:
        `P:N` named the old group's delivery too, so a worker still holding it acked the
        new group's event, which was then never processed."""
        await store.append("s1", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(), 0)
        [old] = await self.claim(subs)
        assert await subs.delete_group("g") is True
        await subs.put_group("g", GroupSettings(), 0)
        [new] = await self.claim(subs)
        assert (new.event.position, new.attempt) == (old.event.position, old.attempt)
        assert await subs.ack("g", [old.delivery_id]) == [old.delivery_id]  # unknown
        assert await subs.nack("g", [old.delivery_id], "skip", "", T0, 0, RULES) == [
            old.delivery_id
        ]
        assert await subs.ack("g", [new.delivery_id]) == []
        assert parse_delivery_id(new.delivery_id) == (new.event.position, 1)
        assert parse_delivery_id(f"{new.event.position}:1") == (new.event.position, 1)
        assert parse_delivery_id(f"{new.event.position}:1:XYZ") is None

    # ---- claim and ack ---------------------------------------------------------------

    async def test_filters_and_system_streams(self, store: EventStore) -> None:
        await store.append("s1", [ev("a"), ev("b")])
        await store.append("s2", [ev("a")])
        await store.append("$sessions", [ev("a")])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(types=("a",), ordering="none"), 0)
        await subs.put_group("h", GroupSettings(sessions=("s2",), ordering="none"), 0)
        got = await self.claim(subs)
        assert [(d.event.stream_id, d.event.type) for d in got] == [("s1", "a"), ("s2", "a")]
        assert [d.attempt for d in got] == [1, 1]
        got_h = await self.claim(subs, group="h")
        assert [(d.event.stream_id, d.event.type) for d in got_h] == [("s2", "a")]

    async def test_ack_is_once_and_moves_the_checkpoint(self, store: EventStore) -> None:
        await store.append("s1", [ev()])
        await store.append("s2", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(), 0)
        got = await self.claim(subs)
        assert positions(got) == [1, 2]
        group = await subs.get_group("g")
        assert group is not None and group.in_flight == 2 and group.checkpoint == 0
        assert await subs.ack("g", [got[1].delivery_id, "nonsense", "99:1"]) == [
            "nonsense",
            "99:1",
        ]
        assert await subs.ack("g", [got[1].delivery_id]) == [got[1].delivery_id]
        group = await subs.get_group("g")
        assert group is not None and group.checkpoint == 0 and group.in_flight == 1
        assert await subs.ack("g", [got[0].delivery_id]) == []
        group = await subs.get_group("g")
        assert group is not None and group.checkpoint == 2 and group.in_flight == 0
        assert await self.claim(subs) == []

    async def test_timeout_redelivers_with_a_new_id_then_parks(self, store: EventStore) -> None:
        await store.append("s1", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(ack_timeout_seconds=10, max_retries=1), 0)
        first = await self.claim(subs)
        assert await self.claim(subs, now=T0 + 9) == []
        second = await self.claim(subs, now=T0 + 10)
        assert [d.attempt for d in second] == [2]
        assert second[0].delivery_id != first[0].delivery_id
        assert await subs.ack("g", ids(first)) == ids(first)  # stale: handed out again
        assert await self.claim(subs, now=T0 + 30) == []  # timed out with no retries left
        group = await subs.get_group("g")
        assert group is not None and group.parked == 1 and group.in_flight == 0
        parked = await subs.parked("g", 10)
        assert parked is not None and [(m.position, m.attempts) for m in parked] == [(1, 2)]
        assert "timeout" in parked[0].reason
        assert parked[0].event is not None and parked[0].event.stream_id == "s1"

    async def test_nack_retry_park_skip(self, store: EventStore) -> None:
        await store.append("s1", [ev()])
        await store.append("s2", [ev()])
        await store.append("s3", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(max_retries=0), 0)
        a, b, c = await self.claim(subs)
        assert await subs.nack("g", [a.delivery_id], "retry", "boom", T0, 5, RULES) == []
        assert await subs.nack("g", [b.delivery_id], "park", "bad input", T0, 0, RULES) == []
        assert await subs.nack("g", [c.delivery_id, "x"], "skip", "", T0, 0, RULES) == ["x"]
        # max_retries=0: a failed first attempt is parked, not retried
        parked = await subs.parked("g", 10)
        assert parked is not None
        assert [(m.position, m.reason) for m in parked] == [
            (1, "boom (after 1 attempts)"),
            (2, "bad input"),
        ]
        assert await subs.replay_parked("g", T0) == 2
        again = await self.claim(subs, now=T0 + 1)
        assert [(d.event.position, d.attempt) for d in again] == [(1, 1), (2, 1)]

    async def test_retry_waits_out_its_delay(self, store: EventStore) -> None:
        await store.append("s1", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(), 0)
        (a,) = await self.claim(subs)
        await subs.nack("g", [a.delivery_id], "retry", "later", T0, 30, RULES)
        assert await self.claim(subs, now=T0 + 29) == []
        (b,) = await self.claim(subs, now=T0 + 30)
        assert b.attempt == 2

    async def test_session_ordering(self, store: EventStore) -> None:
        await store.append("s1", [ev(i=1), ev(i=2)])
        await store.append("s2", [ev(i=1)])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(ordering="session"), 0)
        first = await self.claim(subs)
        assert positions(first) == [1, 3]  # s1's second waits for its first
        await subs.nack("g", [first[0].delivery_id], "retry", "", T0, 10, RULES)
        assert await self.claim(subs) == []  # still waiting for the retry of s1's first
        (retry,) = await self.claim(subs, now=T0 + 10)
        assert retry.event.position == 1
        await subs.ack("g", [retry.delivery_id])
        assert positions(await self.claim(subs, now=T0 + 10)) == [2]

    async def test_parked_does_not_hold_up_its_session(self, store: EventStore) -> None:
        await store.append("s1", [ev(), ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(), 0)
        (a,) = await self.claim(subs)
        await subs.nack("g", [a.delivery_id], "park", "poison", T0, 0, RULES)
        assert positions(await self.claim(subs)) == [2]

    async def test_ordering_none_and_max_in_flight(self, store: EventStore) -> None:
        await store.append("s1", [ev() for _ in range(5)])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(ordering="none", max_in_flight=3), 0)
        assert positions(await self.claim(subs, limit=10)) == [1, 2, 3]
        assert await self.claim(subs) == []

    async def test_sparse_matches_far_apart(self, store: EventStore) -> None:
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(types=("rare",), ordering="none"), 0)
        await store.append("s1", [ev("noise") for _ in range(5000)])
        r = await store.append("s1", [ev("rare")])
        got: list[Delivery] = []
        for _ in range(10):  # the scan window is bounded; a few claims reach it
            got += await self.claim(subs)
        assert positions(got) == [r.last_position]

    async def test_erased_session_is_dropped(self, store: EventStore) -> None:
        await store.append("s1", [ev(), ev()])
        await store.append("s2", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(ordering="none"), 0)
        (a,) = await self.claim(subs, limit=1)
        await store.delete_stream("s1")
        await subs.nack("g", [a.delivery_id], "retry", "", T0, 0, RULES)
        assert positions(await self.claim(subs)) == [3]

    async def test_everything_survives_a_reopen(self) -> None:
        location = self.new_location()
        store = await self.open_at(location)
        await store.append("s1", [ev(), ev(), ev()])
        await store.append("s2", [ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(ack_timeout_seconds=10), 0)
        a, b = await self.claim(subs)
        await subs.nack("g", [b.delivery_id], "park", "bad", T0, 0, RULES)
        await store.close()
        store = await self.open_at(location)
        try:
            subs = store.subscriptions
            group = await subs.get_group("g")
            assert group is not None
            assert (group.in_flight, group.parked, group.settings.ack_timeout_seconds) == (1, 1, 10)
            assert await self.claim(subs) == []  # s1 still held by a
            assert await subs.ack("g", [a.delivery_id]) == []
            assert positions(await self.claim(subs)) == [2]
        finally:
            await store.close()

    async def test_concurrent_claims_never_share_a_delivery(self, store: EventStore) -> None:
        for i in range(20):
            await store.append(f"s{i}", [ev(), ev()])
        subs = store.subscriptions
        await subs.put_group("g", GroupSettings(ordering="none"), 0)
        batches = await asyncio.gather(
            *[self.claim(subs, limit=3, worker=f"w{i}") for i in range(20)]
        )
        handed = [p for batch in batches for p in positions(batch)]
        assert len(handed) == len(set(handed)) == 40

    # ---- the property ----------------------------------------------------------------

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        ops=st.lists(
            st.one_of(
                st.tuples(st.just("append"), st.integers(0, 3), st.booleans()),
                st.tuples(st.just("claim"), st.integers(1, 4), st.booleans()),
                st.tuples(st.just("ack"), st.integers(0, 5), st.booleans()),
                st.tuples(st.just("nack"), st.integers(0, 5), st.sampled_from(["retry", "park"])),
                st.tuples(st.just("tick"), st.integers(1, 25), st.booleans()),
                st.tuples(st.just("restart"), st.just(0), st.booleans()),
                st.tuples(st.just("replay"), st.just(0), st.booleans()),
            ),
            max_size=50,
        ),
        ordering=st.sampled_from(["session", "none"]),
    )
    def test_property_every_match_acked_once_or_parked(
        self, ops: list[tuple[str, int, object]], ordering: str
    ) -> None:
        asyncio.run(self._run_property(ops, ordering))

    async def _run_property(self, ops: list[tuple[str, int, object]], ordering: str) -> None:
        model = Model()
        location = self.new_location()
        store = await self.open_at(location)
        settings_ = GroupSettings(
            types=("match",),
            ack_timeout_seconds=10,
            max_retries=2,
            ordering=ordering,  # type: ignore[arg-type]
        )
        try:
            await store.subscriptions.put_group("g", settings_, 0)
            for op, n, flag in ops:
                if op == "append":
                    r = await store.append(f"s{n}", [ev("match" if flag else "noise")])
                    if flag:
                        model.matching.add(r.last_position)
                elif op == "claim":
                    got = await store.subscriptions.claim("g", "w", n, model.now, RULES)
                    assert got is not None
                    model.handed(got, ordering == "session")
                elif op == "ack" and model.held:
                    chosen = model.pick(n)
                    unknown = await store.subscriptions.ack("g", [chosen.delivery_id])
                    assert unknown is not None
                    if not unknown:
                        model.acked_one(chosen)
                elif op == "nack" and model.held:
                    chosen = model.pick(n)
                    await store.subscriptions.nack(
                        "g",
                        [chosen.delivery_id],
                        flag,  # type: ignore[arg-type]  # drawn from NackAction's values
                        "x",
                        model.now,
                        0,
                        RULES,
                    )
                    model.held.remove(chosen)
                elif op == "tick":
                    model.now += n
                elif op == "replay":
                    assert await store.subscriptions.replay_parked("g", model.now) is not None
                elif op == "restart":
                    await store.close()
                    store = await self.open_at(location)
            # Drain: let every timeout pass and ack whatever comes, until nothing does.
            for _ in range(200):
                model.now += 100
                model.held.clear()
                got = await store.subscriptions.claim("g", "w", 50, model.now, RULES)
                assert got is not None
                model.handed(got, ordering == "session")
                if not got:
                    break
                for d in got:
                    unknown = await store.subscriptions.ack("g", [d.delivery_id])
                    assert unknown == []
                    model.acked_one(d)
            parked = await store.subscriptions.parked("g", 1000)
            assert parked is not None
            parked_positions = {m.position for m in parked}
            assert not parked_positions & set(model.acked)
            assert set(model.acked) | parked_positions == model.matching
            group = await store.subscriptions.get_group("g")
            assert group is not None and group.in_flight == group.ready == 0
        finally:
            await store.close()


@dataclass
class Model:
    """What the property test knows: matching positions, acks, deliveries it holds."""

    now: float = T0
    matching: set[int] = field(default_factory=set)
    acked: list[int] = field(default_factory=list)
    held: list[Delivery] = field(default_factory=list)
    deadlines: dict[str, float] = field(default_factory=dict)

    def handed(self, got: list[Delivery], by_session: bool) -> None:
        for d in got:
            assert d.event.position in self.matching
            assert d.event.position not in self.acked, "an acked event came back"
            self.deadlines[d.delivery_id] = self.now + 10
        self.held.extend(got)
        if by_session:  # no session has two live deliveries at once
            live = [d for d in self.held if self.deadlines[d.delivery_id] > self.now]
            sessions = [d.event.stream_id for d in live]
            assert len(sessions) == len(set(sessions)), sessions

    def pick(self, n: int) -> Delivery:
        return self.held[n % len(self.held)]

    def acked_one(self, d: Delivery) -> None:
        assert d.event.position not in self.acked, "acked twice"
        self.acked.append(d.event.position)
        if d in self.held:
            self.held.remove(d)
