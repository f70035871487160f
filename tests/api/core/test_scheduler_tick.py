"""The fire tick: slots due inside one tick join the next round, and none is lost."""

from __future__ import annotations

from api.core.clock import FakeClock
from api.core.scheduler import Scheduler
from tests.support.triggers_support import node, seed, timer

T0 = 1_790_000_000_000
MIN = 60_000


async def test_slots_due_within_a_tick_all_fire_once_the_tick_passes(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        n.scheduler.fire_tick = 0.3  # real seconds: long enough to be inside it below
        timers = [timer(f"t{i}", interval_minutes=1) for i in range(3)]
        await seed(n.store, "s1", timers[:1], clock.now())
        await seed(n.store, "s2", timers[1:], clock.now())
        await n.settle()
        clock.set(T0 + MIN)  # every slot is due now: one round fires them all
        await n.settle()
        assert len(await n.payloads("s1", "trigger_fired")) == 1
        assert len(await n.payloads("s2", "trigger_fired")) == 2
        clock.set(T0 + 2 * MIN)  # due again, but inside the tick: waits, then fires
        await n.settle()
        assert len(await n.payloads("s1", "trigger_fired")) == 2
        assert len(await n.payloads("s2", "trigger_fired")) == 4


def test_the_tick_is_a_constructor_option() -> None:
    assert Scheduler.__init__.__kwdefaults__ is not None
    assert Scheduler.__init__.__kwdefaults__["fire_tick"] > 0
