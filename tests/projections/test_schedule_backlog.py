"""Cron backlogs past COUNT_LIMIT: the count is a lower bound, but the newest slots
(and so `handled_through`) are the real newest due, so one plan settles the backlog.

Before, `due_slots` kept the newest of the FIRST COUNT_LIMIT slots: `plan_due` handled
only through an old slot, fired it as a catch-up, and planned the rest again next round
(one stale fire and a multi-second walk per COUNT_LIMIT slots; slots due while a session
was stopped were fired on resume).
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import projections.schedule as schedule_module
from projections.schedule import (
    COUNT_LIMIT,
    FIRE_ALL_CAP,
    Schedule,
    due_slots,
    parse_schedule,
    plan_due,
    slots_after,
)
from tests.support.croniter_steps import CountingCroniter

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(
        dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp() * 1000
    )


def timer(**config: object) -> Schedule:
    schedule = parse_schedule("timer", config)
    assert schedule is not None
    return schedule


def forward(schedule: Schedule, after: int, now: int) -> list[int]:
    """Every due slot by the forward walk (the reference)."""
    return list(itertools.takewhile(lambda s: s <= now, slots_after(schedule, after, after)))


def settle(schedule: Schedule, after: int, now: int, anchor: int) -> list[object]:
    """Plan rounds as the scheduler does until nothing is due (bounded)."""
    plans: list[object] = []
    for _ in range(10):
        plan = plan_due(schedule, after, now, anchor)
        if plan.handled_through is None:
            return plans
        plans.append(plan)
        after = plan.handled_through
    raise AssertionError("the backlog did not settle in 10 rounds")


@pytest.mark.slow
def test_a_year_of_minutely_downtime_settles_in_one_round_at_the_newest_slot() -> None:
    schedule = timer(cron="* * * * *", misfire="fire_once")
    anchor, now = ms(2025, 1, 1), ms(2026, 1, 1) + 1
    plan = plan_due(schedule, anchor, now, anchor)
    assert plan.handled_through == ms(2026, 1, 1)  # the newest due slot, not slot 100,000
    assert plan.fire == (ms(2026, 1, 1),) and not plan.catch_up  # on time (1 ms late)
    assert not plan.missed_exact and plan.missed >= COUNT_LIMIT
    assert plan.first_missed == ms(2025, 1, 1, 0, 1)
    assert plan.last_missed == ms(2025, 12, 31, 23, 59)
    # the scheduler's loop: one round, then nothing is due
    assert len(settle(schedule, anchor, now, anchor)) == 1


@pytest.mark.slow
def test_a_year_of_minutely_downtime_catches_up_once_with_the_newest_slot() -> None:
    schedule = timer(cron="* * * * *", misfire="fire_once", misfire_grace_seconds=10)
    anchor, now = ms(2025, 1, 1), ms(2026, 1, 1, 0, 5, 30)  # the newest slot is 30 s late
    plan = plan_due(schedule, anchor, now, anchor)
    assert plan.handled_through == ms(2026, 1, 1, 0, 5)
    assert plan.fire == (ms(2026, 1, 1, 0, 5),) and plan.catch_up == {ms(2026, 1, 1, 0, 5)}
    assert plan.last_missed == ms(2026, 1, 1, 0, 5) and not plan.missed_exact


@pytest.mark.slow
def test_a_stopped_sessions_seconds_cron_backlog_is_skipped_whole() -> None:
    """2.5 days of `* * * * * *` (216,000 slots) planned as `scheduled_events` plans a
    stopped session's (skip, grace -1: none on time): nothing fires, and the one record
    handles through the newest slot, so no slot due while stopped is planned again."""
    schedule = timer(cron="* * * * * *")
    stopped, resumed = ms(2026, 9, 21, 14, 13, 23), ms(2026, 9, 24, 2, 13, 20)
    plan = plan_due(schedule, stopped, resumed, stopped, policy="skip", grace_ms=-1)
    assert plan.fire == () and plan.handled_through == resumed
    assert plan.decision == "skip" and not plan.missed_exact and plan.missed >= COUNT_LIMIT
    assert plan.last_missed == resumed
    assert plan_due(schedule, resumed, resumed, stopped).handled_through is None


@pytest.mark.slow
def test_a_seconds_cron_backlog_fire_all_replays_the_newest_slots() -> None:
    schedule = timer(cron="* * * * * *", misfire="fire_all", timezone="Europe/Berlin")
    after, now = ms(2026, 3, 27), ms(2026, 3, 29, 1, 30) + 500  # across Berlin's spring gap
    plan = plan_due(schedule, after, now, after)
    newest = now - 500
    assert plan.handled_through == newest
    assert plan.fire == tuple(range(newest - FIRE_ALL_CAP * SEC, newest + 1, SEC))
    assert plan.catch_up == frozenset(plan.fire[:-1])
    assert plan.capped and not plan.missed_exact


def test_below_the_limit_nothing_changes() -> None:
    schedule = timer(cron="*/5 * * * *")
    after, now = ms(2026, 1, 1), ms(2026, 1, 2)
    due = due_slots(schedule, after, now, after, keep=3)
    assert due.exact and due.count == 288
    assert due.newest == (ms(2026, 1, 1, 23, 50), ms(2026, 1, 1, 23, 55), ms(2026, 1, 2))


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
CRONS = [
    "* * * * *",
    "*/7 * * * *",
    "30 2 * * *",
    "0 * * * *",
    "15 1-3 * * *",
    "*/20 2 * * *",
    "0 0 * * 0",
    "*/10 * * * * *",
]
# DST changes (UTC) in 2026 of the zones above: the walk back must map walls like the
# forward walk does (shifted, repeated, skipped) right at them.
CHANGES = [
    ms(2026, 3, 8, 7),  # New York spring
    ms(2026, 3, 29, 1),  # Berlin spring
    ms(2026, 4, 4, 15),  # Lord Howe fall back (30 min)
    ms(2026, 4, 5, 3),  # Santiago fall back
    ms(2026, 9, 6, 4),  # Santiago spring
    ms(2026, 10, 3, 15, 30),  # Lord Howe spring (30 min)
    ms(2026, 10, 25, 1),  # Berlin fall back
    ms(2026, 11, 1, 6),  # New York fall back
]


@settings(max_examples=300, deadline=None)
@given(
    expr=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    change=st.sampled_from(CHANGES),
    now_offset=st.integers(-6 * HOUR, 6 * HOUR),
    span=st.integers(1 * HOUR, 9 * 24 * HOUR),
    limit=st.integers(1, 40),
    keep=st.integers(1, 12),
)
def test_past_the_limit_the_newest_slots_are_those_a_forward_walk_gives(
    expr: str, zone: str, change: int, now_offset: int, span: int, limit: int, keep: int
) -> None:
    schedule = timer(cron=expr, timezone=zone)
    now = change + now_offset
    after = now - span
    reference = forward(schedule, after, now)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schedule_module, "COUNT_LIMIT", limit)
        due = due_slots(schedule, after, now, after, keep=keep)
    assert due.newest == tuple(reference[-keep:])
    assert due.first == (reference[0] if reference else None)
    if len(reference) > limit:
        assert not due.exact and limit < due.count <= len(reference)
    else:
        assert due.exact and due.count == len(reference)


@pytest.mark.parametrize("cron", ["* * * * * *", "* * * * *"])
def test_planning_a_long_backlog_steps_through_a_bounded_number_of_slots(
    monkeypatch: pytest.MonkeyPatch, cron: str
) -> None:
    """Planning runs on the event loop: however long the downtime, one plan walks at most
    about 10,000 slots (it walked 100,000 before, 2-3 s with every request waiting)."""
    monkeypatch.setattr(schedule_module, "croniter", CountingCroniter)
    schedule = timer(cron=cron)
    step = SEC if len(cron.split()) == 6 else MIN
    anchor = ms(2026, 3, 1)
    now = anchor + 200_000 * step + 1
    CountingCroniter.steps = 0
    plan = plan_due(schedule, anchor, now, anchor)
    assert plan.handled_through == now - 1 and not plan.missed_exact
    assert plan.missed == COUNT_LIMIT  # "at least": the count stopped there (one fires)
    assert CountingCroniter.steps <= 10_000 + 2 * FIRE_ALL_CAP
