"""The supervisor: loops that fail are logged, restarted with backoff and reported;
one poisoned session is skipped while every other keeps firing (fake clock, real SQLite)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import api.core.scheduler as scheduler_module
from api.core.clock import FakeClock
from api.core.supervisor import RestartPolicy, Supervisor
from api.core.tasks import stop_task
from eventstore import StoreUnavailable
from projections.schedule import next_due
from projections.session import SessionState
from projections.trigger_commands import decide_fires
from tests.support.triggers_support import append, node, seed, timer

MIN = 60_000
T0 = 1_790_000_000_000
FAST = RestartPolicy(initial_seconds=0.01, max_seconds=0.05, stable_seconds=3600)


async def _until(check: Any, rounds: int = 500) -> None:
    """Poll `check()` up to `rounds` x 10 ms (a hang detector, not a timing assertion)."""
    for _ in range(rounds):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_failing_loop_is_logged_restarted_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(FAST)
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) <= 3:
            raise RuntimeError(f"boom {len(runs)}")
        await forever.wait()

    with caplog.at_level(logging.ERROR, logger="hivelog.supervisor"):
        task = supervisor.spawn("flaky", flaky)
        await _until(lambda: len(runs) == 4)
    report = supervisor.report()["flaky"]
    assert report["status"] == "degraded"  # running again, not yet stable
    assert report["restarts"] == 3
    assert "boom 3" in str(report["reason"])
    failures = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info for r in failures)  # with the traceback
    await stop_task(task)
    assert supervisor.report()["flaky"]["status"] == "down"  # stopped


async def test_backoff_is_exponential_and_capped() -> None:
    policy = RestartPolicy(initial_seconds=0.1, factor=2.0, max_seconds=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.8]
    assert policy.delay(50) == 30.0


async def test_a_required_component_down_is_reported_down() -> None:
    supervisor = Supervisor(RestartPolicy(initial_seconds=30.0, max_seconds=30.0))

    async def broken() -> None:
        raise OSError("no")

    task = supervisor.spawn("follower", broken, required=True)
    await _until(lambda: supervisor.report()["follower"]["status"] == "down")
    assert supervisor.required_down() == ["follower"]
    await stop_task(task)


async def test_a_poisoned_schedule_is_skipped_and_the_others_keep_firing(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault-injecting double of `next_due` raises for one session only."""
    real_next_due = next_due  # the function the scheduler module looks up by this name

    def poisoned_next_due(trigger: Any, now_ms: int) -> int | None:
        if trigger.trigger_config.get("poison"):
            raise OverflowError("cannot convert float infinity to integer")
        return real_next_due(trigger, now_ms)

    monkeypatch.setattr(scheduler_module, "next_due", poisoned_next_due)
    clock = FakeClock(T0)
    with caplog.at_level(logging.ERROR, logger="hivelog.scheduler"):
        async with node(db_url, clock) as n:
            await seed(n.store, "bad", [timer("t", interval_minutes=1, poison=True)], clock.now())
            for i in range(3):
                await seed(n.store, f"good{i}", [timer("t", interval_minutes=1)], clock.now())
            await n.run_until(T0 + 30 * MIN)
            for i in range(3):
                fired = await n.payloads(f"good{i}", "trigger_fired")
                assert [f["scheduled_at"] for f in fired] == [T0 + k * MIN for k in range(1, 31)]
            assert await n.payloads("bad", "trigger_fired") == []
            assert set(n.scheduler.poisoned) == {("bad", "t")}
            report = n.scheduler.poison_report()
            assert report is not None and "bad/t" in report and "OverflowError" in report
            health = n.scheduler.supervisor.report()["scheduler"]
            assert health["status"] == "degraded" and "bad/t" in str(health["reason"])
            # a fix to the trigger (a new state) is scheduled again, and the report clears
            body = {
                "trigger_id": "t",
                "trigger_type": "timer",
                "trigger_config": {"interval_minutes": 1},
            }
            await append(n.store, "bad", "trigger_updated", body, clock.now())
            await n.run_until(T0 + 32 * MIN)
            assert len(await n.payloads("bad", "trigger_fired")) >= 1
            assert n.scheduler.poisoned == {}
            assert n.scheduler.supervisor.report()["scheduler"]["status"] == "ok"
    skipped = [r for r in caplog.records if "is skipped" in r.getMessage()]
    assert len(skipped) == 1  # logged once, not once per refresh


async def test_a_raw_out_of_range_value_in_the_log_stops_no_other_session(db_url: str) -> None:
    """The value issue 12 found (`interval_minutes: 1e305`, refused by validation at the
    edge) written straight into the log: whatever the schedule code makes of it, every
    other session keeps firing and the scheduler task stays alive."""
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "bad", [timer("t", interval_minutes=1e305)], clock.now())
        await seed(
            n.store,
            "bad2",
            [timer("t", interval_minutes=1, misfire_grace_seconds=1e308)],
            clock.now(),
        )
        await seed(n.store, "good", [timer("t", interval_minutes=1)], clock.now())
        await n.run_until(T0 + 10 * MIN)
        fired = await n.payloads("good", "trigger_fired")
        assert [f["scheduled_at"] for f in fired] == [T0 + k * MIN for k in range(1, 11)]
        assert n.scheduler.supervisor.report()["scheduler"]["status"] in {"ok", "degraded"}


async def test_a_fire_decision_that_raises_poisons_only_its_session(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault-injecting double of `decide_fires` raises for one session only."""
    real_decide = decide_fires  # the function the scheduler module looks up by this name

    def poisoned_decide(
        state: SessionState | None,
        session_id: str,
        trigger_ids: set[str],
        now_ms: int,
        **kw: Any,
    ) -> Any:
        if session_id == "bad":
            raise ValueError("bad input")
        return real_decide(state, session_id, trigger_ids, now_ms, **kw)

    monkeypatch.setattr(scheduler_module, "decide_fires", poisoned_decide)
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "bad", [timer("t", interval_minutes=1)], clock.now())
        await seed(n.store, "good", [timer("t", interval_minutes=1)], clock.now())
        await n.run_until(T0 + 10 * MIN)
        assert len(await n.payloads("good", "trigger_fired")) == 10
        assert set(n.scheduler.poisoned) == {("bad", "t")}
        assert "ValueError" in str(n.scheduler.poison_report())


async def test_a_crashed_scheduler_loop_restarts_and_fires_on(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure outside any one trigger (here injected into the heap walk once) restarts
    the loop from the projection; fires resume."""
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s", [timer("t", interval_minutes=1)], clock.now())
        await n.run_until(T0 + 2 * MIN)
        real = n.scheduler.next_due_ms
        calls = {"n": 0}

        def once_broken() -> int | None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("injected")
            return real()

        monkeypatch.setattr(n.scheduler, "next_due_ms", once_broken)
        n.scheduler._wake.set()
        component = n.scheduler.supervisor.components["scheduler"]
        await _until(lambda: component.restarts == 1 and component.running)
        await n.run_until(T0 + 5 * MIN)
        fired = await n.payloads("s", "trigger_fired")
        assert [f["scheduled_at"] for f in fired] == [T0 + k * MIN for k in range(1, 6)]


async def test_a_failing_checkpoint_backs_off_instead_of_retrying_hot(db_url: str) -> None:
    """A store double whose checkpoint writes fail as on a full disk: one attempt, then
    the checkpointer waits its backoff (5 s first), reported down meanwhile, one log line."""
    clock = FakeClock(T0)
    async with node(db_url, clock, scheduler=False) as n:
        attempts: list[int] = []

        async def full_disk(name: str, position: int, state: bytes) -> None:
            attempts.append(position)
            raise StoreUnavailable("SQLite: database or disk is full")

        n.store.save_checkpoint = full_disk  # type: ignore[method-assign]
        n.service._saved_at = 0.0  # due now
        await seed(n.store, "s", [timer("t", interval_minutes=1)], clock.now())
        component = n.service.supervisor.components["checkpointer"]
        await _until(lambda: not component.running)
        report = component.report()
        assert report["status"] == "down" and "disk is full" in str(report["reason"])
        assert component.restart_at is not None
        assert component.restart_at - time.monotonic() > 4.0  # waits, not retrying hot
        assert len(attempts) == 1
        assert n.service.supervisor.incidents.active
        n.store.save_checkpoint = type(n.store).save_checkpoint.__get__(n.store)  # type: ignore[method-assign]


def test_postgresql_outages_map_to_store_unavailable() -> None:
    """The PostgreSQL backend's mapping around its writes, fed the errors asyncpg raises
    (a fault-injecting double: a real full disk under a shared server is not on offer)."""
    import asyncpg

    from eventstore.postgres import _unavailable_on_outage

    for error in (
        asyncpg.DiskFullError("could not extend file"),
        asyncpg.PostgresIOError("could not write"),
        asyncpg.AdminShutdownError("terminating connection"),
        ConnectionResetError("reset"),
    ):
        with pytest.raises(StoreUnavailable) as caught, _unavailable_on_outage():
            raise error
        assert caught.value.__cause__ is error
    with pytest.raises(asyncpg.UniqueViolationError), _unavailable_on_outage():
        raise asyncpg.UniqueViolationError("not an outage")
