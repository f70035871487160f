"""Cron backlogs counted within a step budget (`Backlogs`) give exactly what the
unbudgeted count gives, and no more than the budget's steps between two refills.

The scheduler plans on the event loop: before, one round counted every due trigger's
backlog in one go (up to COUNT_LIMIT croniter steps each, ~0.3-0.6 s), so a session
with 20 seconds-crons after a day's downtime held the loop ~7 s. With a budget a count
stops where the budget runs out (`Uncounted`) and goes on after a loop turn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import projections.schedule as schedule_module
from projections.schedule import (
    Backlogs,
    Schedule,
    StepBudget,
    Uncounted,
    due_slots,
    parse_schedule,
    plan_due,
)
from projections.session import ColonyState, SessionState
from projections.trigger_commands import decide_fires
from projections.triggers import TriggerState
from tests.support.croniter_steps import CountingCroniter

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
T = TypeVar("T")


def ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp() * 1000)


def timer(**config: object) -> Schedule:
    schedule = parse_schedule("timer", config)
    assert schedule is not None
    return schedule


def in_turns(budget: StepBudget, decide: Callable[[], T], turns: list[int]) -> T:
    """Decide as the scheduler does: on `Uncounted`, a new turn (refill), decide again;
    `turns` gets the croniter steps of each turn."""
    for _ in range(100_000):
        before = CountingCroniter.steps
        try:
            result = decide()
        except Uncounted:
            turns.append(CountingCroniter.steps - before)
            budget.refill()
            continue
        turns.append(CountingCroniter.steps - before)
        return result
    raise AssertionError("never counted")


CRONS = ["* * * * * *", "*/7 * * * *", "30 2 * * *", "0 * * * *", "*/20 2 * * *", "0 0 * * 0"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@settings(max_examples=200, deadline=None)
@given(
    expr=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    now=st.integers(ms(2026, 3, 1), ms(2026, 11, 30)),
    span=st.integers(1, 20 * 24 * HOUR),
    limit=st.integers(1, 300),
    keep=st.integers(1, 12),
    per_turn=st.integers(1, 50),
)
def test_a_budgeted_count_equals_the_unbudgeted_one(
    expr: str, zone: str, now: int, span: int, limit: int, keep: int, per_turn: int
) -> None:
    schedule = timer(cron=expr, timezone=zone)
    after = now - span
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schedule_module, "COUNT_LIMIT", limit)
        reference = due_slots(schedule, after, now, after, keep)
        budget = StepBudget(per_turn)
        backlogs = Backlogs(budget)
        turns: list[int] = []
        due = in_turns(
            budget, lambda: due_slots(schedule, after, now, after, keep, backlogs), turns
        )
    assert due == reference


@pytest.mark.parametrize("per_turn", [1, 7, 256])
def test_each_turn_steps_through_at_most_the_budget(
    monkeypatch: pytest.MonkeyPatch, per_turn: int
) -> None:
    """Two seconds-crons and a minutely one, each with a backlog past the limit, decided
    as one round: every turn takes at most `per_turn` croniter steps (plus the one
    `next_slot` step per fired trigger, outside the count), and the events are those
    of the unbudgeted decision."""
    monkeypatch.setattr(schedule_module, "croniter", CountingCroniter)
    monkeypatch.setattr(schedule_module, "COUNT_LIMIT", 500)
    now = ms(2026, 5, 2)
    anchor = now - 24 * HOUR
    configs = {"a": "* * * * * *", "b": "*/2 * * * * *", "c": "* * * * *"}
    triggers = {
        tid: TriggerState(
            id=tid,
            trigger_type="timer",
            trigger_config={"cron": cron, "misfire": policy},
            active=True,
            anchor_at=anchor,
        )
        for (tid, cron), policy in zip(
            configs.items(), ["fire_once", "fire_all", "skip"], strict=True
        )
    }
    colony = ColonyState(colony_id="c", colony_name="c", agent_path="/x")
    state = SessionState(session_id="s", live=True, colony=colony, triggers=triggers)
    reference = decide_fires(state, "s", set(triggers), now)
    budget = StepBudget(per_turn)
    backlogs = Backlogs(budget)
    turns: list[int] = []
    events = in_turns(
        budget, lambda: decide_fires(state, "s", set(triggers), now, backlogs=backlogs), turns
    )
    assert [(e.type, e.data, e.event_id) for e in events] == [
        (e.type, e.data, e.event_id) for e in reference
    ]
    assert len(turns) > 3 * 500 // per_turn  # it did take turns
    assert max(turns) <= per_turn + len(triggers)
    missed = [e.data["data"] for e in events if e.type == "missed_triggers"]
    assert [m["count"] for m in missed] == [500, 500, 500] and not missed[0]["count_exact"]
    plan = plan_due(timer(cron="* * * * * *"), anchor, now, anchor)
    assert missed[0]["handled_through"] == plan.handled_through == now
