"""The one trigger_config validator, its bounds, and schedule arithmetic that never raises."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.core.agent_files import json_depth, value_depth
from projections.schedule import (
    MAX_SLOT_MS,
    next_due,
    next_fire_fields,
    parse_schedule,
    plan_due,
    slots_after,
)
from projections.session import ColonyState, SessionState
from projections.trigger_commands import scheduled_events
from projections.trigger_config import (
    MAX_GRACE_SECONDS,
    MAX_INTERVAL_MINUTES,
    ConfigError,
    merge_config,
    validate_config,
)
from projections.triggers import TriggerState

NOW = 1_800_000_000_000
NUMERIC_FIELDS = {
    "timer": ("interval_minutes", "misfire_grace_seconds"),
    "webhook": ("port",),
}
BASE: dict[str, dict[str, Any]] = {"timer": {"interval_minutes": 5}, "webhook": {"path": "/hook"}}
# every JSON number (and what Python's json module also yields: inf, nan, huge ints), bools
NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63, 2**63 - 1, 2**64, 1e305, 1e308, -0.0, 5e-324, True, False]),
)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"interval_minutes": 1e305}, "'trigger_config.interval_minutes' must be at most"),
        ({"interval_minutes": 2**63}, "'trigger_config.interval_minutes' must be at most"),
        ({"interval_minutes": math.inf}, "'trigger_config.interval_minutes' must be > 0"),
        ({"interval_minutes": math.nan}, "'trigger_config.interval_minutes' must be > 0"),
        ({"interval_minutes": True}, "'trigger_config.interval_minutes' must be > 0"),
        (
            {"interval_minutes": 1, "misfire_grace_seconds": 1e308},
            "'trigger_config.misfire_grace_seconds' must be at most",
        ),
        (
            {"interval_minutes": 1, "misfire_grace_seconds": False},
            "'trigger_config.misfire_grace_seconds' must be a number >= 0",
        ),
        (
            {"cron": "0 9 * * *", "misfire_grace_seconds": 2**63},
            "'trigger_config.misfire_grace_seconds' must be at most",
        ),
        ({"interval_minutes": 1, "note": 2**64}, "'trigger_config.note' is outside the 64-bit"),
        (
            {"interval_minutes": 1, "x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]},
            "'trigger_config.x[0][0]",
        ),
    ],
)
def test_timer_bounds_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config("timer", config)
    assert info.value.message.startswith(message), info.value.message


def test_bounds_themselves_are_accepted() -> None:
    validate_config(
        "timer",
        {"interval_minutes": MAX_INTERVAL_MINUTES, "misfire_grace_seconds": MAX_GRACE_SECONDS},
    )
    validate_config("webhook", {"path": "/h", "port": 65535})
    for port in (0, 65536, True, 1e3):
        with pytest.raises(ConfigError, match=r"'trigger_config\.port'"):
            validate_config("webhook", {"path": "/h", "port": port})


def test_patch_merge_goes_through_the_same_bounds() -> None:
    with pytest.raises(ConfigError, match="interval_minutes"):
        merge_config("timer", {"interval_minutes": 5}, {"interval_minutes": 1e305})


def _exercise(config: dict[str, Any], trigger_type: str, **kw: Any) -> None:
    """Everything the scheduler and the read views compute from a config; must not raise,
    and what they produce must encode as JSON (the log and the HTTP bodies)."""
    trigger = TriggerState(
        id="t",
        trigger_type=trigger_type,
        trigger_config=config,
        **{"active": True, "anchor_at": NOW - 3_600_000, **kw},
    )
    state = SessionState(
        session_id="s1",
        live=True,
        loaded_at=(NOW - 7_200_000) / 1000,
        colony=ColonyState(colony_id="c", colony_name="c", agent_path="/x"),
        triggers={"t": trigger},
    )
    for now in (NOW, NOW + 86_400_000 * 3):
        orjson.dumps(next_fire_fields(trigger, now))
        next_due(trigger, now)
        events = scheduled_events(state, trigger, now, "s1")
        for event in events:
            orjson.dumps(event.data)
    schedule = parse_schedule(trigger_type, config)
    if schedule is not None:
        plan_due(schedule, NOW - 10**9, NOW, NOW - 10**9)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["timer", "webhook"]),
    data=st.data(),
    number=NUMBERS,
)
def test_any_number_in_any_numeric_field_is_refused_or_computes(
    kind: str, data: st.DataObject, number: Any
) -> None:
    field = data.draw(st.sampled_from(NUMERIC_FIELDS[kind]))
    config = {**BASE[kind], field: number}
    try:
        valid = validate_config(kind, config)
    except ConfigError as exc:
        assert field in exc.message  # a 400 that names the field
        return
    orjson.dumps(valid)  # the log can hold it
    _exercise(valid, kind)


@settings(max_examples=300, deadline=None)
@given(
    interval=NUMBERS,
    grace=NUMBERS,
    anchor=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
    last=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
)
def test_values_already_in_the_log_never_raise(
    interval: Any, grace: Any, anchor: int | None, last: int | None
) -> None:
    """Configs and slot times that were never validated (an old log, an import) mean
    "never fires" at worst, in the scheduler and in every read view."""
    config = {"interval_minutes": interval, "misfire_grace_seconds": grace}
    _exercise(config, "timer", anchor_at=anchor, last_scheduled_at=last)
    _exercise({"cron": "0 0 1 1 *", "misfire_grace_seconds": grace}, "timer", anchor_at=anchor)


def test_slots_stop_at_the_last_representable_instant() -> None:
    schedule = parse_schedule("timer", {"interval_minutes": MAX_INTERVAL_MINUTES})
    assert schedule is not None
    slots = list(slots_after(schedule, MAX_SLOT_MS - 10**12, MAX_SLOT_MS - 10**12))
    assert slots == [] or all(s <= MAX_SLOT_MS for s in slots)
    assert list(slots_after(schedule, 2**63, 0)) == []
    cron = parse_schedule("timer", {"cron": "0 0 1 1 *"})
    assert cron is not None
    assert all(s <= MAX_SLOT_MS for s in slots_after(cron, MAX_SLOT_MS - 10**11, 0))


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"{}", 1),
        (b'{"a": "[[[[[[", "b": [1, {"c": []}]}', 4),
        (b'["\\"[[[", [[]]]', 3),
        (b"[" * 5000 + b"]" * 5000, 5000),
        (b"5", 0),
    ],
)
def test_json_depth_ignores_brackets_in_strings(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth
    if depth <= 1024:  # orjson's own limit: deeper input never parses
        assert value_depth(orjson.loads(raw)) == depth


@pytest.mark.parametrize(
    "expr",
    ["R * * * *", "r * * * *", "R/5 * * * *", "r/10 * * * *", "0 r * * *", "R(0-30) * * * *"],
)
def test_random_cron_fields_are_refused_in_every_spelling(expr: str) -> None:
    """croniter draws a random field anew on every parse: the heap, the fire decision and
    other nodes would each see other slots (fires several times per period)."""
    with pytest.raises(ConfigError, match="Invalid cron expression"):
        validate_config("timer", {"cron": expr})


@pytest.mark.parametrize("expr", ["0 0 * mar fri", "0 0 * * thu,fri", "0 0 29 2 *", "*/5 * * * *"])
def test_month_and_day_names_are_not_taken_for_random_fields(expr: str) -> None:
    validate_config("timer", {"cron": expr})
