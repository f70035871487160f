"""The scheduler on a fake clock: days of schedule in milliseconds, real SQLite files."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from api.core.clock import FakeClock
from projections.schedule import FIRE_ALL_CAP, fire_event_id
from tests.support.triggers_support import append, node, seed, timer

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_790_000_000_000  # 2026-09-21T13:33:20Z


def utc_ms(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: ZoneInfo | None = None
) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=tz or dt.UTC).timestamp() * 1000)


async def test_interval_fires_on_its_grid_for_a_day(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t1", interval_minutes=10)], clock.now())
        await n.run_until(T0 + DAY)
        fired = await n.payloads("s1", "trigger_fired")
        assert [f["scheduled_at"] for f in fired] == [T0 + k * 10 * MIN for k in range(1, 145)]
        assert [f["fire_count"] for f in fired] == list(range(1, 145))
        assert all(f["last_fired_at"] == f["scheduled_at"] for f in fired)  # zero lateness
        events = await n.events("s1", {"trigger_fired"})
        assert events[0].event_id == str(fire_event_id("s1", "t1", T0 + 10 * MIN))
        state = n.service.get("s1")
        assert state is not None and state.triggers["t1"].fire_count == 144


async def test_daily_berlin_cron_fires_once_a_day_through_both_dst_changes(db_url: str) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = utc_ms(2026, 3, 27)
    clock = FakeClock(start)
    async with node(db_url, clock) as n:
        trig = timer("daily", cron="30 2 * * *", timezone="Europe/Berlin")
        await seed(n.store, "s1", [trig], clock.now())
        await n.run_until(start + 5 * DAY)
        # jump to the autumn change without fires in between (skip the summer)
        await append(n.store, "s1", "trigger_deactivated", {"trigger_id": "daily"}, clock.now())
        await n.settle()
        clock.set(utc_ms(2026, 10, 23))
        body = {
            "trigger_id": "daily",
            "trigger_type": "timer",
            "trigger_config": trig["trigger_config"],
        }
        await append(n.store, "s1", "trigger_activated", body, clock.now())
        await n.run_until(utc_ms(2026, 10, 28))
        fired = await n.payloads("s1", "trigger_fired")
        local = [dt.datetime.fromtimestamp(f["scheduled_at"] / 1000, berlin) for f in fired]
        days = [(d.month, d.day) for d in local]
        spring = [(3, 27), (3, 28), (3, 29), (3, 30), (3, 31)]
        autumn = [(10, 23), (10, 24), (10, 25), (10, 26), (10, 27)]
        assert days == [*spring, *autumn]
        assert [(d.hour, d.minute) for d in local][2] == (3, 30)  # 02:30 did not exist
        assert len(set(days)) == len(days)  # never twice on the fall-back day


@pytest.mark.parametrize(
    ("policy", "expected_fires", "catch_up"),
    [("fire_once", 1, 1), ("skip", 0, 0), ("fire_all", 30, 30)],
)
async def test_downtime_follows_the_misfire_policy(
    db_url: str, policy: str, expected_fires: int, catch_up: int
) -> None:
    clock = FakeClock(T0)
    trig = timer("t", interval_minutes=1, misfire=policy, misfire_grace_seconds=10)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [trig], clock.now())
        await n.run_until(T0 + 5 * MIN)
    clock.set(T0 + 35 * MIN + 30_000)  # down for 30 slots; the newest is 30 s late
    async with node(db_url, clock) as n:
        await n.settle()
        missed = await n.payloads("s1", "missed_triggers")
        assert len(missed) == 1
        assert missed[0]["count"] == 30 and missed[0]["decision"] == policy
        assert missed[0]["first_missed_at"] == T0 + 6 * MIN
        assert missed[0]["last_missed_at"] == T0 + 35 * MIN
        assert missed[0]["reason"] == "downtime"
        fired = (await n.payloads("s1", "trigger_fired"))[5:]
        assert len(fired) == expected_fires
        assert sum(1 for f in fired if f.get("catch_up")) == catch_up
        state = n.service.get("s1")
        assert state is not None
        assert state.triggers["t"].fire_count == 5 + expected_fires
        assert state.triggers["t"].last_scheduled_at == T0 + 35 * MIN
        # and the grid goes on, on time
        await n.run_until(T0 + 38 * MIN)
        later = (await n.payloads("s1", "trigger_fired"))[5 + expected_fires :]
        assert [f["scheduled_at"] for f in later] == [T0 + 36 * MIN, T0 + 37 * MIN, T0 + 38 * MIN]


async def test_fire_all_is_capped_and_records_it(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t", interval_minutes=1, misfire="fire_all")], clock.now())
        await n.settle()
    clock.set(T0 + 500 * MIN + 1)
    async with node(db_url, clock) as n:
        await n.settle()
        (missed,) = await n.payloads("s1", "missed_triggers")
        assert missed["capped"] and missed["dropped"] == 500 - 1 - FIRE_ALL_CAP
        assert missed["fired"] == FIRE_ALL_CAP
        assert len(await n.payloads("s1", "trigger_fired")) == FIRE_ALL_CAP + 1  # + on-time slot


async def test_short_downtime_within_grace_is_not_a_misfire(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t", interval_minutes=1)], clock.now())
        await n.settle()
    clock.set(T0 + MIN + 20_000)
    async with node(db_url, clock) as n:
        await n.settle()
        assert await n.payloads("s1", "missed_triggers") == []
        assert [f["scheduled_at"] for f in await n.payloads("s1", "trigger_fired")] == [T0 + MIN]


async def test_deactivated_trigger_stays_quiet_and_reactivation_restarts_the_grid(
    db_url: str,
) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t", interval_minutes=1)], clock.now())
        await n.run_until(T0 + 2 * MIN)
        await append(n.store, "s1", "trigger_deactivated", {"trigger_id": "t"}, clock.now())
        await n.run_until(T0 + 60 * MIN)
        assert len(await n.payloads("s1", "trigger_fired")) == 2
        clock.set(T0 + 60 * MIN + 7_000)
        body = {
            "trigger_id": "t",
            "trigger_type": "timer",
            "trigger_config": {"interval_minutes": 1},
        }
        await append(n.store, "s1", "trigger_activated", body, clock.now())
        await n.run_until(T0 + 62 * MIN + 7_000)
        fired = await n.payloads("s1", "trigger_fired")
        assert [f["scheduled_at"] for f in fired[2:]] == [
            T0 + 61 * MIN + 7_000,
            T0 + 62 * MIN + 7_000,
        ]
        assert await n.payloads("s1", "missed_triggers") == []


async def test_stopped_session_pauses_its_timers_and_resume_records_the_gap(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t", interval_minutes=1)], clock.now())
        await n.run_until(T0 + 3 * MIN)
        await append(n.store, "s1", "session_stopped", {"session_id": "s1"}, clock.now())
        await n.run_until(T0 + 20 * MIN)
        assert len(await n.payloads("s1", "trigger_fired")) == 3
        await append(n.store, "s1", "session_resumed", {"session_id": "s1"}, clock.now())
        await n.run_until(T0 + 21 * MIN)
        (missed,) = await n.payloads("s1", "missed_triggers")
        assert missed["reason"] == "session_stopped" and missed["decision"] == "skip"
        assert missed["count"] == 17
        fired = await n.payloads("s1", "trigger_fired")
        assert [f["scheduled_at"] for f in fired[3:]] == [T0 + 21 * MIN]


async def test_gated_fire_is_recorded_as_skipped_with_its_reason(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t", interval_minutes=1)], clock.now(), colony=False)
        await n.run_until(T0 + 2 * MIN)
        skipped = await n.payloads("s1", "trigger_fire_skipped")
        assert [(s["scheduled_at"], s["reason"]) for s in skipped] == [
            (T0 + MIN, "colony_not_loaded"),
            (T0 + 2 * MIN, "colony_not_loaded"),
        ]
        assert await n.payloads("s1", "trigger_fired") == []


async def test_config_change_reschedules_at_once(db_url: str) -> None:
    clock = FakeClock(T0)
    async with node(db_url, clock) as n:
        await seed(n.store, "s1", [timer("t", interval_minutes=60)], clock.now())
        await n.settle()
        assert n.scheduler.next_due_ms() == T0 + HOUR
        body = {
            "trigger_id": "t",
            "trigger_type": "timer",
            "trigger_config": {"interval_minutes": 5},
        }
        await append(n.store, "s1", "trigger_updated", body, clock.now())
        await n.settle()
        assert n.scheduler.next_due_ms() == T0 + 5 * MIN


async def test_two_nodes_record_every_slot_once(db_url: str) -> None:
    """Two schedulers over one log (as two processes would be): no slot twice."""
    clock = FakeClock(T0)
    async with node(db_url, clock) as a, node(db_url, clock) as b:
        for i in range(5):
            await seed(a.store, f"s{i}", [timer("t", interval_minutes=1)], clock.now())
        for minute in range(1, 31):
            clock.set(T0 + minute * MIN)
            await a.settle()
            await b.settle()
        await a.settle()
        await b.settle()
        for i in range(5):
            events = await a.events(f"s{i}", {"trigger_fired"})
            ids = [e.event_id for e in events]
            assert len(ids) == len(set(ids)) == 30
            expected = {str(fire_event_id(f"s{i}", "t", T0 + m * MIN)) for m in range(1, 31)}
            assert set(ids) == expected
            assert all(uuid.UUID(x) for x in ids)
