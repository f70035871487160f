"""One bad trigger never stops the other timers of its session: a fire decision that
raises, or a fire append the store refuses, settles only that trigger (fake clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import projections.trigger_commands as trigger_commands
from api.core.clock import FakeClock
from eventstore import EventStore, InvalidEvent, NewEvent
from projections.envelope import new_event
from projections.session import SessionState
from projections.triggers import TriggerState
from tests.support.triggers_support import append, node, seed, timer

MIN = 60_000
T0 = 1_790_000_000_000


async def test_a_decision_that_raises_for_one_trigger_spares_its_co_due_triggers(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault-injecting double of `scheduled_events` raises for one trigger only; the
    healthy trigger of the same session, due in the same rounds, fires every slot."""
    real = trigger_commands.scheduled_events

    def bad_events(
        state: SessionState, trigger: TriggerState, now_ms: int, session_id: str, **kw: Any
    ) -> Any:
        if trigger.trigger_config.get("poison"):
            raise OverflowError("injected")
        return real(state, trigger, now_ms, session_id, **kw)

    monkeypatch.setattr(trigger_commands, "scheduled_events", bad_events)
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        timers = [timer("bad", interval_minutes=1, poison=True), timer("good", interval_minutes=1)]
        await seed(n.store, "s", timers, clock.now())
        await n.run_until(T0 + 5 * MIN)
        fired = await n.payloads("s", "trigger_fired")
        assert [(f["trigger_id"], f["scheduled_at"]) for f in fired] == [
            ("good", T0 + k * MIN) for k in range(1, 6)
        ]
        assert set(n.scheduler.poisoned) == {("s", "bad")}
        assert "OverflowError" in str(n.scheduler.poison_report())


async def test_a_fire_id_already_stored_holds_up_no_co_due_trigger(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trigger c is re-added with an anchor before its last recorded slot (a node whose
    clock is 30 s behind), so its first derived fire id is already stored: its co-due
    trigger g keeps firing, nothing spins, and c is not poisoned (it skips that slot and
    fires on: test_scheduler_fire_clash.py; before, it was skipped until edited)."""
    t0 = T0 - T0 % (120 * MIN)
    clock = FakeClock(t0)
    async with node(db_url, clock) as n:
        c = timer("c", cron="* * * * *", misfire="fire_all")
        await seed(n.store, "s", [c, timer("g", cron="* * * * *")], clock.now())
        await n.run_until(t0 + 2 * MIN)
        skewed = clock.now() - 30
        body = {"trigger_id": "c", "trigger_type": "timer", "name": "c", "task": "do it"}
        body["trigger_config"] = c["trigger_config"]
        await append(n.store, "s", "trigger_removed", {"trigger_id": "c", "name": "c"}, skewed)
        await append(n.store, "s", "trigger_available", body, skewed)
        await append(n.store, "s", "trigger_activated", body, skewed)
        refused = _count_refusals(n.store, monkeypatch)
        await n.run_until(t0 + 6 * MIN)
        fired = [
            (f["trigger_id"], f["scheduled_at"]) for f in await n.payloads("s", "trigger_fired")
        ]
        assert [t for t in fired if t[0] == "g"] == [("g", t0 + k * MIN) for k in range(1, 7)]
        assert n.scheduler.poisoned == {}
        assert [t for t in fired if t[0] == "c"] == [("c", t0 + k * MIN) for k in range(1, 7)]
        assert refused == {"DuplicateEventId": 2}  # the round's append, then c's alone


async def test_a_fire_event_the_store_refuses_stops_only_its_trigger(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store double refuses (InvalidEvent, as for an event over the size limit) every
    append holding a fire of trigger "big": the other timers of the session fire on."""
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        timers = [timer("big", interval_minutes=1), timer("small", interval_minutes=1)]
        await seed(n.store, "s", timers, clock.now())
        real_append = n.store.append

        async def refusing(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
            if any('"trigger_id": "big"' in json.dumps(e.data, default=str) for e in events):
                raise InvalidEvent("event of 2000000 bytes; the limit is 1048576")
            return await real_append(stream_id, events, **kw)

        monkeypatch.setattr(n.store, "append", refusing)
        await n.run_until(T0 + 4 * MIN)
        fired = await n.payloads("s", "trigger_fired")
        assert [(f["trigger_id"], f["scheduled_at"]) for f in fired] == [
            ("small", T0 + k * MIN) for k in range(1, 5)
        ]
        assert set(n.scheduler.poisoned) == {("s", "big")}
        # the store's reason (execute raises it as `Unrecordable`, an InvalidEvent)
        assert "event of 2000000 bytes; the limit is 1048576" in str(n.scheduler.poison_report())


def _count_refusals(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Wrap `store.append` to count the appends it refuses, by exception name."""
    refused: dict[str, int] = {}
    real_append = store.append

    async def counting(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
        try:
            return await real_append(stream_id, events, **kw)
        except Exception as exc:
            name = type(exc).__name__
            refused[name] = refused.get(name, 0) + 1
            raise

    monkeypatch.setattr(store, "append", counting)
    return refused


async def test_slots_another_node_just_recorded_are_not_taken_for_a_bad_trigger(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without fire claims a second node may record the same slots in another batch (here
    a store double appends them first, after an unrelated event): the refused round is
    decided again on the caught-up projection, where they are no longer due; nothing is
    poisoned and each slot is recorded once."""
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(
            n.store,
            "s",
            [timer("g", interval_minutes=1), timer("h", interval_minutes=1)],
            clock.now(),
        )
        await n.settle()
        real_append = n.store.append
        raced: list[str] = []

        async def other_node_first(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
            if stream_id == "s" and not raced:
                raced.append(stream_id)
                body = {"trigger_id": "z", "trigger_type": "webhook", "trigger_config": {}}
                other = [new_event("trigger_available", body, timestamp=clock.now())]
                await real_append(stream_id, other + list(events))
            return await real_append(stream_id, events, **kw)

        monkeypatch.setattr(n.store, "append", other_node_first)
        await n.run_until(T0 + 3 * MIN)
        fired = [
            (f["trigger_id"], f["scheduled_at"]) for f in await n.payloads("s", "trigger_fired")
        ]
        assert sorted(fired) == sorted((t, T0 + k * MIN) for t in "gh" for k in range(1, 4))
        assert raced and n.scheduler.poisoned == {}
