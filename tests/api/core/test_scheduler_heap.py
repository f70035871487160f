"""The heap of due times stays in proportion to the live timers: edits of a timer whose
next slot is far away do not pile up stale entries (fake clock, real SQLite)."""

from __future__ import annotations

from api.core.clock import FakeClock
from api.core.scheduler import HEAP_SLACK
from tests.support.triggers_support import append, node, seed, timer

MIN = 60_000
T0 = 1_790_000_000_000


async def test_deactivate_activate_of_a_far_timer_does_not_grow_the_heap(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        yearly: dict[str, object] = {"interval_minutes": 60 * 24 * 365}
        await seed(n.store, "s", [timer("t", interval_minutes=60 * 24 * 365)], clock.now())
        await seed(n.store, "early", [timer("daily", interval_minutes=60 * 24)], clock.now())
        await n.settle()
        body = {"trigger_id": "t", "trigger_type": "timer", "trigger_config": yearly}
        for _ in range(2 * HEAP_SLACK):
            clock.advance(1)
            await append(n.store, "s", "trigger_deactivated", {"trigger_id": "t"}, clock.now())
            await n.settle()
            await append(n.store, "s", "trigger_activated", body, clock.now())
            await n.settle()
        assert n.scheduler.due_count() == 2
        assert len(n.scheduler._heap) <= 2 * n.scheduler.due_count() + HEAP_SLACK
        await n.run_until(T0 + 2 * 24 * 60 * MIN)  # the live timers still fire
        assert len(await n.payloads("early", "trigger_fired")) == 2
        assert len(await n.payloads("s", "trigger_fired")) == 0
