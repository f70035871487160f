"""A trigger whose derived fire id is already stored recovers on its own (fake clock,
real SQLite). The id is derived from (session, trigger id, slot), so it is taken when
a trigger is removed and added again under its id with an anchor before a slot the
old one recorded (here: appended by a node whose clock is behind). Before, the store's
refusal poisoned the trigger: skipped for good, every later slot too, until edited
(and again after each restart). Now that slot is recorded as skipped (`fire_id_taken`)
under an id derived from the taken one, never fired twice, and the trigger fires on.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from api.core.clock import FakeClock
from eventstore import EventStore, NewEvent
from tests.support.triggers_support import Node, append, node, seed, timer

MIN = 60_000
T0 = 1_790_000_000_000
START = T0 - T0 % (120 * MIN)  # on the minute grid


async def re_add(n: Node, trigger: dict[str, Any], behind_s: float) -> None:
    """Remove the trigger and add it again as a node `behind_s` seconds behind would."""
    at = n.clock.now() - behind_s
    tid = trigger["id"]
    body = {"trigger_id": tid, "trigger_type": "timer", "name": tid, "task": trigger["task"]}
    body["trigger_config"] = trigger["trigger_config"]
    await append(n.store, "s", "trigger_removed", {"trigger_id": tid, "name": tid}, at)
    await append(n.store, "s", "trigger_available", body, at)
    await append(n.store, "s", "trigger_activated", body, at)


def count_refusals(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    refused: Counter[str] = Counter()
    real_append = store.append

    async def counting(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
        try:
            return await real_append(stream_id, events, **kw)
        except Exception as exc:
            refused[type(exc).__name__] += 1
            raise

    monkeypatch.setattr(store, "append", counting)
    return refused


async def slots(n: Node, type: str, tid: str) -> list[int]:
    return [p["scheduled_at"] for p in await n.payloads("s", type) if p["trigger_id"] == tid]


async def test_a_fire_once_trigger_whose_fire_id_is_taken_fires_on(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(START)
    c = timer("c", cron="* * * * *")  # misfire: fire_once (the default)
    async with node(db_url, clock) as n:
        await seed(n.store, "s", [c], clock.now())
        await n.run_until(START + 2 * MIN)
        await re_add(n, c, behind_s=30)  # the new c's first slot, START + 2 min, is stored
        await n.run_until(START + 6 * MIN)
        assert n.scheduler.poisoned == {} and n.scheduler.poison_report() is None
        assert await slots(n, "trigger_fired", "c") == [START + k * MIN for k in range(1, 7)]
        skipped = [p for p in await n.payloads("s", "trigger_fire_skipped")]
        assert [(p["scheduled_at"], p["reason"]) for p in skipped] == [
            (START + 2 * MIN, "fire_id_taken")
        ]
        state = n.service.get("s")
        assert state is not None and state.triggers["c"].fire_count == 4  # the new c's
    # a restart does not meet the taken id again: the slot is handled in the log
    async with node(db_url, clock) as n:
        refused = count_refusals(n.store, monkeypatch)
        await n.run_until(START + 8 * MIN)
        assert refused == Counter() and n.scheduler.poisoned == {}
        assert (await slots(n, "trigger_fired", "c"))[-2:] == [START + 7 * MIN, START + 8 * MIN]


async def test_fire_all_with_many_taken_slots_fires_each_slot_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five minutes behind: the new c's first round holds five fires whose ids are all
    taken (each refusal names one); all five are skipped in one append, its co-due
    trigger g fires every slot, and c fires every slot after."""
    clock = FakeClock(START)
    c = timer("c", cron="* * * * *", misfire="fire_all")
    async with node(db_url, clock) as n:
        await seed(n.store, "s", [c, timer("g", cron="* * * * *")], clock.now())
        await n.run_until(START + 6 * MIN)
        clock.advance(30_000)
        await re_add(n, c, behind_s=5 * 60)  # anchored at START + 1.5 min
        refused = count_refusals(n.store, monkeypatch)
        await n.run_until(START + 10 * MIN)
        assert n.scheduler.poisoned == {}
        expected = [START + k * MIN for k in range(1, 11)]
        assert await slots(n, "trigger_fired", "g") == expected
        assert await slots(n, "trigger_fired", "c") == expected  # each slot once
        assert await slots(n, "trigger_fire_skipped", "c") == expected[1:6]
        # the round (c with g), then c alone: once per taken id, then the append
        assert refused == Counter({"DuplicateEventId": 1 + 5})
