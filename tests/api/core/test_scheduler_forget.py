"""What the scheduler keeps about a trigger or session goes with it: a removed trigger
or a deleted session is no longer reported as poisoned (health "degraded" for ever),
and its retry time and cached due time are dropped (fake clock, real SQLite)."""

from __future__ import annotations

from typing import Any

import pytest

import api.core.scheduler as scheduler_module
from api.core.clock import FakeClock
from eventstore import NewEvent, StoreUnavailable
from projections.schedule import next_due
from tests.support.triggers_support import append, node, seed, timer

MIN = 60_000
T0 = 1_790_000_000_000


async def test_removed_triggers_and_deleted_sessions_leave_nothing_behind(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Doubles: `next_due` raises for triggers marked "poison"; the store refuses (as
    on a full disk) every append to session "gone", so that session has a retry time."""

    def poisoned_next_due(trigger: Any, now_ms: int) -> int | None:
        if trigger.trigger_config.get("poison"):
            raise OverflowError("injected")
        return next_due(trigger, now_ms)

    monkeypatch.setattr(scheduler_module, "next_due", poisoned_next_due)
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        real_append = n.store.append

        async def full_for_gone(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
            if stream_id == "gone":
                raise StoreUnavailable("injected: disk full")
            return await real_append(stream_id, events, **kw)

        timers = [timer("bad", interval_minutes=1, poison=True), timer("ok", interval_minutes=1)]
        await seed(n.store, "s", timers, clock.now())
        await seed(n.store, "gone", timers, clock.now())
        await seed(n.store, "gone_bad", timers[:1], clock.now())  # never due: no fire finds it
        monkeypatch.setattr(n.store, "append", full_for_gone)
        await n.run_until(T0 + 2 * MIN)
        assert set(n.scheduler.poisoned) == {("s", "bad"), ("gone", "bad"), ("gone_bad", "bad")}
        assert "gone" in n.scheduler._retry_at
        monkeypatch.setattr(n.store, "append", real_append)

        await append(
            n.store, "s", "trigger_removed", {"trigger_id": "bad", "name": "bad"}, clock.now()
        )
        await n.service.delete_session("gone", clock.now())
        await n.service.delete_session("gone_bad", clock.now())
        await n.run_until(T0 + 4 * MIN)
        assert n.scheduler.poisoned == {}
        assert n.scheduler.poison_report() is None
        assert n.scheduler.supervisor.report()["scheduler"]["status"] == "ok"
        assert "gone" not in n.scheduler._retry_at
        assert set(n.scheduler._seen) == {"s"} and set(n.scheduler._seen["s"]) == {"ok"}
        assert len(await n.payloads("s", "trigger_fired")) == 4
