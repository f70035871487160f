"""A retry time is wall-clock time: after the clock steps back it is capped at the
longest backoff from now, instead of holding the session's timers until the old
(future) time comes round again (a fake clock that can step back, real SQLite)."""

from __future__ import annotations

from typing import Any

import pytest

from api.core.clock import FakeClock
from eventstore import NewEvent, StoreUnavailable
from tests.support.triggers_support import append, node, seed, timer

MIN = 60_000
DAY = 24 * 60 * MIN
T0 = 1_790_000_000_000


class SteppingClock(FakeClock):
    """A fake clock that an NTP correction can step back."""

    def step_back_to(self, when_ms: int) -> None:
        self._now_ms = when_ms


async def test_a_retry_time_does_not_outlive_a_backward_clock_step(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SteppingClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s", [timer("t", interval_minutes=1)], clock.now())
        await n.settle()
        real_append = n.store.append

        async def disk_full(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
            raise StoreUnavailable("injected: disk full")

        monkeypatch.setattr(n.store, "append", disk_full)
        clock.set(T0 + DAY)  # a wrong step forward: the fire there is refused, retried later
        await n.settle()
        assert await n.payloads("s", "trigger_fired") == []
        monkeypatch.setattr(n.store, "append", real_append)

        clock.step_back_to(T0 + 30_000)  # corrected; then the session is edited
        body = {"trigger_id": "u", "trigger_type": "timer", "trigger_config": {"cron": "0 0 1 1 *"}}
        await append(n.store, "s", "trigger_available", {**body, "name": "u"}, clock.now())
        await n.settle()
        await n.run_until(T0 + 3 * MIN)
        fired = await n.payloads("s", "trigger_fired")
        assert fired, "t is held until the pre-step retry time, a day away"
        assert {f["trigger_id"] for f in fired} == {"t"}
