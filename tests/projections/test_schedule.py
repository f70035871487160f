"""Pure schedule arithmetic: cron in local time across DST, anchored intervals, misfires."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.schedule import (
    COUNT_LIMIT,
    FIRE_ALL_CAP,
    ConfigError,
    Schedule,
    fire_event_id,
    merge_config,
    next_fire_fields,
    next_slot,
    parse_schedule,
    plan_due,
    slots_after,
    validate_timer_config,
    validate_webhook_config,
)
from projections.triggers import TriggerState

BERLIN = ZoneInfo("Europe/Berlin")
MIN = 60_000
HOUR = 60 * MIN


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: object = dt.UTC) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=tz).timestamp() * 1000)  # type: ignore[arg-type]


def local(slot: int, tz: ZoneInfo = BERLIN) -> dt.datetime:
    return dt.datetime.fromtimestamp(slot / 1000, tz)


def timer(**config: object) -> Schedule:
    schedule = parse_schedule("timer", config)
    assert schedule is not None
    return schedule


def take(schedule: Schedule, after: int, until: int, anchor: int | None = None) -> list[int]:
    return list(
        itertools.takewhile(lambda s: s <= until, slots_after(schedule, after, anchor or after))
    )


# -- croniter pin ---------------------------------------------------------------------


def test_croniter_is_pinned_to_the_hive_era_release() -> None:
    """6.3+ reads `{max}/{step}` differently (`59/10` = only :59); 6.2.4 is what hive ran,
    so triggers.json schedules keep their meaning. An upgrade must fail here first."""
    assert importlib.metadata.version("croniter") == "6.2.4"
    slots = take(timer(cron="59/10 * * * *"), ms(2026, 1, 1), ms(2026, 1, 1, 0, 30))
    assert [local(s, ZoneInfo("UTC")).minute for s in slots] == [10, 20, 30]


# -- cron and DST ---------------------------------------------------------------------


def test_cron_is_utc_by_default_like_hive() -> None:
    slots = take(timer(cron="0 9 * * *"), ms(2026, 6, 1), ms(2026, 6, 3))
    assert slots == [ms(2026, 6, 1, 9), ms(2026, 6, 2, 9)]


@pytest.mark.parametrize(
    ("first_day", "expected_hours"),
    [
        # spring forward 2026-03-29: 02:30 does not exist -> shifted by the gap to 03:30 CEST
        ((2026, 3, 27), {27: (2, 30), 28: (2, 30), 29: (3, 30), 30: (2, 30), 31: (2, 30)}),
        # fall back 2026-10-25: 02:30 happens twice -> fires on the first occurrence only
        ((2026, 10, 23), {23: (2, 30), 24: (2, 30), 25: (2, 30), 26: (2, 30), 27: (2, 30)}),
    ],
)
def test_daily_berlin_0230_fires_once_per_local_day_across_dst(
    first_day: tuple[int, int, int], expected_hours: dict[int, tuple[int, int]]
) -> None:
    schedule = timer(cron="30 2 * * *", timezone="Europe/Berlin")
    start = ms(*first_day, tz=BERLIN)
    slots = take(schedule, start, start + 5 * 24 * HOUR - 1)
    days = [local(s).day for s in slots]
    assert days == sorted(expected_hours)  # exactly one per local day
    assert {local(s).day: (local(s).hour, local(s).minute) for s in slots} == expected_hours
    if first_day[1] == 10:
        repeated = local(slots[2])
        assert repeated.utcoffset() == dt.timedelta(hours=2)  # the first 02:30 (CEST)


def test_hourly_cron_follows_real_time_across_dst() -> None:
    schedule = timer(cron="0 * * * *", timezone="Europe/Berlin")
    spring = take(schedule, ms(2026, 3, 29, tz=BERLIN) - 1, ms(2026, 3, 30, tz=BERLIN) - 1)
    autumn = take(schedule, ms(2026, 10, 25, tz=BERLIN) - 1, ms(2026, 10, 26, tz=BERLIN) - 1)
    assert len(spring) == 23 and len(autumn) == 25
    for slots in (spring, autumn):
        assert all(b - a == HOUR for a, b in itertools.pairwise(slots))


def test_cron_slots_resume_from_any_point_inside_a_dst_change() -> None:
    schedule = timer(cron="*/20 * * * *", timezone="Europe/Berlin")
    start = ms(2026, 10, 24, 22)
    full = take(schedule, start, start + 8 * HOUR)
    for i, slot in enumerate(full[:-1]):
        assert next_slot(schedule, slot, start) == full[i + 1]
        assert next_slot(schedule, slot + 1, start) == full[i + 1]


@settings(max_examples=200, deadline=None)
@given(
    expr=st.sampled_from(["30 2 * * *", "*/7 * * * *", "0 */3 * * *", "15 1-3 * * 0", "0 0 1 * *"]),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    after=st.integers(min_value=ms(2026, 1, 1), max_value=ms(2027, 1, 1)),
)
def test_cron_slots_are_strictly_increasing_and_consistent(expr: str, tz: str, after: int) -> None:
    schedule = timer(cron=expr, timezone=tz)
    slots = list(itertools.islice(slots_after(schedule, after, after), 6))
    assert slots[0] > after
    assert all(a < b for a, b in itertools.pairwise(slots))
    for a, b in itertools.pairwise(slots):
        assert next_slot(schedule, a, after) == b


# -- intervals ------------------------------------------------------------------------


def test_interval_is_anchored_and_never_drifts() -> None:
    schedule = timer(interval_minutes=1.5)
    anchor = ms(2026, 5, 1, 12)
    assert next_slot(schedule, anchor, anchor) == anchor + 90_000
    # however late the previous fire was handled, the next slot stays on the grid
    assert next_slot(schedule, anchor + 90_000 + 7_777, anchor) == anchor + 180_000
    assert next_slot(schedule, anchor + 10**9, anchor) == anchor + (10**9 // 90_000 + 1) * 90_000


def test_interval_ignores_the_time_zone_elapsed_time_only() -> None:
    schedule = timer(interval_minutes=60, timezone="Europe/Berlin")
    anchor = ms(2026, 3, 29, 0, tz=BERLIN)
    slots = take(schedule, anchor, anchor + 5 * HOUR, anchor)
    assert all(b - a == HOUR for a, b in itertools.pairwise(slots))


# -- misfire policy -------------------------------------------------------------------


def test_on_time_slot_fires_normally() -> None:
    schedule = timer(interval_minutes=1)
    plan = plan_due(schedule, 0, MIN + 500, 0)
    assert plan.fire == (MIN,) and plan.missed == 0 and plan.handled_through == MIN


def test_nothing_due_nothing_planned() -> None:
    assert plan_due(timer(interval_minutes=1), 0, MIN - 1, 0).fire == ()


@pytest.mark.parametrize(
    ("policy", "fired", "catch_up"),
    [
        ("fire_once", (10 * MIN,), frozenset({10 * MIN})),
        ("skip", (), frozenset()),
        ("fire_all", None, None),
    ],
)
def test_downtime_policies(
    policy: str, fired: tuple[int, ...] | None, catch_up: frozenset[int] | None
) -> None:
    schedule = timer(interval_minutes=1, misfire=policy, misfire_grace_seconds=5)
    plan = plan_due(schedule, 0, 10 * MIN + 30_000, 0)  # 10 slots, newest 30 s late
    assert plan.missed == 10 and plan.decision == policy and plan.handled_through == 10 * MIN
    assert plan.first_missed == MIN and plan.last_missed == 10 * MIN
    if fired is None:
        assert plan.fire == tuple(k * MIN for k in range(1, 11)) and not plan.capped
    else:
        assert plan.fire == fired and plan.catch_up == catch_up


def test_newest_slot_within_grace_fires_on_time_and_the_rest_are_missed() -> None:
    schedule = timer(interval_minutes=1, misfire="skip", misfire_grace_seconds=60)
    plan = plan_due(schedule, 0, 5 * MIN + 10_000, 0)
    assert plan.fire == (5 * MIN,) and plan.missed == 4 and plan.catch_up == frozenset()


def test_fire_all_is_capped_and_says_so() -> None:
    schedule = timer(interval_minutes=1, misfire="fire_all", misfire_grace_seconds=0)
    plan = plan_due(schedule, 0, 1000 * MIN + 5000, 0)  # even grace 0 tolerates 1 s
    assert plan.missed == 1000 and plan.capped and plan.dropped == 1000 - FIRE_ALL_CAP
    assert len(plan.fire) == FIRE_ALL_CAP and plan.fire[-1] == 1000 * MIN


def test_a_year_of_minutely_cron_downtime_is_bounded_work() -> None:
    schedule = timer(cron="* * * * *", misfire="fire_once")
    plan = plan_due(schedule, ms(2025, 1, 1), ms(2026, 1, 1) + 1, ms(2025, 1, 1))
    assert plan.missed >= COUNT_LIMIT and not plan.missed_exact and len(plan.fire) == 1
    # the newest due slot, not the newest of the first COUNT_LIMIT: one round settles it
    assert plan.handled_through == ms(2026, 1, 1) and plan.fire == (ms(2026, 1, 1),)


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"cron": 5}, "'trigger_config.cron' must be a string"),
        ({"cron": "not cron"}, "Invalid cron expression: not cron"),
        ({"cron": "0 0 30 2 *"}, "Invalid cron expression: 0 0 30 2 * (it never fires)"),
        ({"cron": "R * * * *"}, "Invalid cron expression: R * * * *"),
        ({}, "Timer trigger needs 'cron' or 'interval_minutes' in trigger_config."),
        ({"interval_minutes": 0}, "'trigger_config.interval_minutes' must be > 0"),
        ({"interval_minutes": True}, "'trigger_config.interval_minutes' must be > 0"),
        ({"interval_minutes": "5"}, "'trigger_config.interval_minutes' must be > 0"),
        ({"interval_minutes": float("nan")}, "'trigger_config.interval_minutes' must be > 0"),
        ({"interval_minutes": 1, "timezone": "Mars/Olympus"}, "Unknown time zone: 'Mars/Olympus'"),
        ({"interval_minutes": 1, "timezone": 3}, "'trigger_config.timezone' must be a string"),
        (
            {"interval_minutes": 1, "misfire": "later"},
            "'trigger_config.misfire' must be one of fire_once, skip, fire_all",
        ),
        (
            {"interval_minutes": 1, "misfire_grace_seconds": -1},
            "'trigger_config.misfire_grace_seconds' must be a number >= 0",
        ),
    ],
)
def test_timer_validation_messages(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_timer_config(config)
    assert info.value.message == message


def test_tiny_intervals_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least"):
        validate_timer_config({"interval_minutes": 0.0001})


def test_valid_cron_wins_over_interval() -> None:
    assert validate_timer_config({"cron": "0 9 * * *", "interval_minutes": 5}) == {
        "cron": "0 9 * * *"
    }


def test_merge_is_shallow_and_null_removes_a_key() -> None:
    merged = merge_config("timer", {"cron": "0 9 * * *"}, {"cron": None, "interval_minutes": 2})
    assert merged == {"interval_minutes": 2}
    with pytest.raises(ConfigError, match="must be an object"):
        merge_config("timer", {}, [1])


def test_webhook_validation() -> None:
    assert validate_webhook_config({"path": "/gh", "methods": ["post"]})["path"] == "/gh"
    for bad in ({"path": "gh"}, {"path": "/gh", "methods": ["FETCH"]}, {"path": "/x", "secret": 1}):
        with pytest.raises(ConfigError):
            validate_webhook_config(bad)


# -- ids and display ------------------------------------------------------------------


def test_fire_event_id_is_derived_from_session_trigger_and_slot() -> None:
    a = fire_event_id("s1", "t1", 1000)
    assert a == fire_event_id("s1", "t1", 1000)
    assert len({a, fire_event_id("s1", "t1", 1001), fire_event_id("s2", "t1", 1000)}) == 3
    assert fire_event_id("s1", "t1x", 1000) != fire_event_id("s1t", "1x", 1000)


def test_next_fire_fields_for_entry_points() -> None:
    now = ms(2026, 6, 1, 8, 59)
    state = TriggerState(
        id="t", trigger_type="timer", trigger_config={"cron": "0 9 * * *"}, active=True
    )
    assert next_fire_fields(state, now) == {"next_fire_at": ms(2026, 6, 1, 9), "next_fire_in": 60.0}
    inactive = TriggerState(id="t", trigger_type="timer", trigger_config={"cron": "0 9 * * *"})
    assert next_fire_fields(inactive, now) == {}
