"""A retry queued before a backward wall-clock step waits its backoff, not the step
(a fake clock whose wall time an NTP correction steps back; real SQLite).

Before, a retry time was a wall time folded into the session's due time when the
session was refreshed; the clock stepping back by an hour left that due time an hour
away, and the session's timers waited until it came round again (unless an event for
the session refreshed it). The backoff is kept on the monotonic clock now, and a
step makes the sessions waiting for a retry compute their due times again.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.core.clock import FakeClock
from api.core.scheduler import STORE_RETRY_MS
from eventstore import NewEvent, StoreUnavailable
from tests.api.core.test_scheduler_clock_step import SteppingClock
from tests.support.triggers_support import node, seed, timer

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
T0 = 1_790_000_000_000


@pytest.mark.parametrize("step", [10 * SEC, HOUR, 24 * HOUR])
async def test_a_retry_queued_before_a_backward_step_waits_only_its_backoff(
    db_url: str, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    clock = SteppingClock(T0 + step)
    async with node(db_url, clock) as n:
        await seed(n.store, "s", [timer("t", interval_minutes=1)], clock.now())
        await n.settle()
        real_append = n.store.append

        async def disk_full(stream_id: str, events: list[NewEvent], **kw: Any) -> Any:
            raise StoreUnavailable("injected: disk full")

        monkeypatch.setattr(n.store, "append", disk_full)
        clock.advance(MIN)  # t's first slot: the store refuses it, a retry is queued
        await n.settle()
        assert await n.payloads("s", "trigger_fired") == []
        monkeypatch.setattr(n.store, "append", real_append)

        # the wall clock is corrected; nothing refreshes the session
        clock.step_back_to(clock.now_ms() - step)
        clock.advance(STORE_RETRY_MS)  # the backoff has passed (monotonic time)
        await n.settle()
        slot = T0 + step + MIN
        assert n.scheduler.next_due_ms() == slot, "still held until the pre-step retry time"
        await n.run_until(slot + 2 * MIN)
        fired = await n.payloads("s", "trigger_fired")
        assert [f["scheduled_at"] for f in fired] == [slot, slot + MIN, slot + 2 * MIN]
        assert all(f["last_fired_at"] == f["scheduled_at"] for f in fired)  # each on time


async def test_a_scheduler_told_not_to_fire_records_nothing_until_it_may(db_url: str) -> None:
    """A process whose node id another process took while it was paused stands aside
    (api/core/nodes.py: `displaced`): its scheduler records no fire while `may_fire`
    says no, and fires the slots due (as its misfire policy says) once it may again.
    Before, a displaced process went on running the node's timers."""
    clock = FakeClock(T0)
    allowed = False
    async with node(db_url, clock) as n:
        n.scheduler.may_fire = lambda: allowed
        await seed(n.store, "s", [timer("t", interval_minutes=1)], clock.now())
        await n.settle()
        await n.run_until(T0 + 3 * MIN)
        assert await n.payloads("s", "trigger_fired") == []
        allowed = True
        await n.run_until(T0 + 5 * MIN)
        fired = await n.payloads("s", "trigger_fired")
        assert fired and fired[-1]["scheduled_at"] == T0 + 5 * MIN
