"""Counting long cron backlogs never holds the event loop for a whole round (fake
clock, real SQLite): croniter steps are counted per event-loop turn by a callback
that queues itself again each turn.

Before, each due session's plan counted every trigger's backlog in one go, and the
fires of one round all planned in the same loop turn: 20 `* * * * * *` timers after a
day's downtime held one loop iteration for 5.6-7.5 s (measured with a loop probe),
whether in one session or in several. Now the plans of a turn share STEPS_PER_TURN
steps and go on after a loop turn; what is recorded is what the unbudgeted plan gives.
"""

from __future__ import annotations

import asyncio

import pytest

import projections.schedule as schedule_module
from api.core.clock import FakeClock
from api.core.scheduler import STEPS_PER_TURN
from projections.schedule import parse_schedule, plan_due
from tests.support.croniter_steps import CountingCroniter
from tests.support.triggers_support import node, seed, timer

DAY = 24 * 3600 * 1000
T0 = 1_790_000_000_000
LIMIT = 1000  # COUNT_LIMIT, smaller to keep the test short (past it all the same)


async def test_a_day_of_seconds_cron_backlogs_is_counted_a_turn_at_a_time(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule_module, "croniter", CountingCroniter)
    monkeypatch.setattr(schedule_module, "COUNT_LIMIT", LIMIT)
    clock = FakeClock(T0)
    sessions = {"s1": 12, "s2": 4, "s3": 4}  # 20 timers
    async with node(db_url, clock) as n:
        for sid, count in sessions.items():
            # distinct graces: identical schedules would be counted once per session
            timers = [
                timer(f"t{i}", cron="* * * * * *", misfire_grace_seconds=60 + i)
                for i in range(count)
            ]
            await seed(n.store, sid, timers, clock.now())
        await n.settle()
        loop = asyncio.get_running_loop()
        per_turn: list[int] = []
        last = CountingCroniter.steps
        probing = True

        def turn() -> None:
            nonlocal last
            per_turn.append(CountingCroniter.steps - last)
            last = CountingCroniter.steps
            if probing:
                loop.call_soon(turn)

        loop.call_soon(turn)
        clock.set(T0 + DAY)
        await n.settle()
        probing = False
        await asyncio.sleep(0)
        counted = sum(per_turn)
        # each trigger: LIMIT + 1 slots forward, FIRE_ALL_CAP + 1 back, a few elsewhere
        assert counted > 20 * LIMIT
        # a turn's plans share the budget; a handful of single steps (a fired trigger's
        # next slot, the due times computed again) fall outside it
        assert max(per_turn) <= STEPS_PER_TURN + 3 * 20, max(per_turn)
        schedule = parse_schedule("timer", {"cron": "* * * * * *"})
        assert schedule is not None
        plan = plan_due(schedule, T0, T0 + DAY, T0)  # the unbudgeted plan
        for sid, count in sessions.items():
            missed = await n.payloads(sid, "missed_triggers")
            fired = await n.payloads(sid, "trigger_fired")
            assert len(missed) == len(fired) == count
            for m in missed:
                assert (m["count"], m["count_exact"], m["handled_through"]) == (
                    plan.missed,
                    plan.missed_exact,
                    plan.handled_through,
                )
                assert (m["first_missed_at"], m["last_missed_at"]) == (
                    plan.first_missed,
                    plan.last_missed,
                )
            assert {f["scheduled_at"] for f in fired} == set(plan.fire)
