"""One bad trigger never stops the other timers of its session: a fire decision that
raises, or a fire append the store refuses, settles only that trigger (fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

import projections.trigger_commands as trigger_commands
from api.core.clock import FakeClock
from projections.session import SessionState
from projections.triggers import TriggerState
from tests.support.triggers_support import node, seed, timer

MIN = 60_000
T0 = 1_790_000_000_000


async def test_a_decision_that_raises_for_one_trigger_spares_its_co_due_triggers(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault-injecting double of `scheduled_events` raises for one trigger only; the
    healthy trigger of the same session, due in the same rounds, fires every slot."""
    real = trigger_commands.scheduled_events

    def bad_events(state: SessionState, trigger: TriggerState, now_ms: int, session_id: str) -> Any:
        if trigger.trigger_config.get("poison"):
            raise OverflowError("injected")
        return real(state, trigger, now_ms, session_id)

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
