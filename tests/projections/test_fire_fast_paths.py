"""The timer fire's fast paths give exactly what the general code gives (issue 15).

Each shortcut on the fire path (plan, next slot, derived id, state copies) is
checked against the code it stands in for, over random inputs including the
insane logged values the general code tolerates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.schedule import (
    MAX_SLOT_MS,
    Schedule,
    _plan_due_slots,
    fire_event_id,
    fire_event_text,
    next_slot,
    plan_due,
    slots_after,
)
from projections.session import _SESSION_FIELDS, SessionState, _evolve
from projections.triggers import TriggerState, _int_or_none

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ms = st.one_of(
    st.integers(T0 - 10**7, T0 + 10**7),
    st.integers(-(10**3), MAX_SLOT_MS + 10**3),
    st.sampled_from([0, MAX_SLOT_MS, MAX_SLOT_MS + 1, -1]),
)
steps = st.one_of(st.integers(1, 10**6), st.sampled_from([0, -5, 100, 60_000]))
graces = st.one_of(st.none(), st.integers(-1, 10**6))
policies = st.sampled_from([None, "fire_once", "skip", "fire_all"])


def interval(step: int, grace: int, misfire: str) -> Schedule:
    return Schedule(cron=None, interval_ms=step, tz=None, misfire=misfire, grace_ms=grace)


@given(
    steps,
    st.integers(1000, 10**6),
    st.sampled_from(["fire_once", "skip", "fire_all"]),
    ms,
    ms,
    ms,
    policies,
    graces,
)
def test_interval_plan_equals_the_general_plan(
    step: int,
    grace: int,
    misfire: str,
    after: int,
    now: int,
    anchor: int,
    policy: str | None,
    grace_ms: int | None,
) -> None:
    schedule = interval(step, grace, misfire)
    fast = plan_due(schedule, after, now, anchor, policy=policy, grace_ms=grace_ms)
    assert fast == _plan_due_slots(schedule, after, now, anchor, policy, grace_ms)


@given(steps, ms, ms)
def test_interval_next_slot_equals_the_first_of_slots_after(
    step: int, after: int, anchor: int
) -> None:
    schedule = interval(step, 60_000, "fire_once")
    assert next_slot(schedule, after, anchor) == next(slots_after(schedule, after, anchor), None)


@given(st.sampled_from(["*/5 * * * *", "0 3 * * *", "30 2 * * 0"]), ms, ms)
def test_cron_next_slot_is_unchanged(expr: str, after: int, anchor: int) -> None:
    schedule = Schedule(cron=expr, interval_ms=None, tz=None)
    assert next_slot(schedule, after, anchor) == next(slots_after(schedule, after, anchor), None)


@given(st.text(max_size=20), st.text(max_size=20), st.integers(-(2**70), 2**70))
def test_fire_event_text_is_the_uuid5_text(session_id: str, trigger_id: str, slot: int) -> None:
    try:
        expected = str(fire_event_id(session_id, trigger_id, slot))
    except UnicodeEncodeError:  # lone surrogates: both refuse
        try:
            fire_event_text(session_id, trigger_id, slot)
        except UnicodeEncodeError:
            return
        raise AssertionError("fire_event_text accepted what uuid5 refuses") from None
    assert fire_event_text(session_id, trigger_id, slot) == expected


session_changes = st.fixed_dictionaries(
    {},
    optional={
        "version": st.integers(0, 10**9),
        "last_active_at": st.floats(allow_nan=False),
        "live": st.booleans(),
        "queen_phase": st.text(max_size=5),
        "model": st.one_of(st.none(), st.text(max_size=5)),
        "runner_node": st.one_of(st.none(), st.text(max_size=5)),
        "event_counts": st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=3),
        "triggers": st.dictionaries(
            st.text(max_size=3),
            st.builds(TriggerState, id=st.text(max_size=3), trigger_type=st.just("timer")),
            max_size=2,
        ),
        "message_count": st.integers(0, 10**6),
    },
)


@given(session_changes, session_changes)
def test_session_evolve_equals_replace(first: dict[str, Any], second: dict[str, Any]) -> None:
    base = dataclasses.replace(SessionState(session_id="s"), **first)
    fast = _evolve(base, second)
    slow = dataclasses.replace(base, **second)
    assert type(fast) is SessionState
    assert fast == slow
    assert all(getattr(fast, n) is getattr(slow, n) for n in _SESSION_FIELDS)
    assert fast.to_dict() == slow.to_dict()


def _int_or_none_reference(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not -(2**63) <= value < 2**63:
        return None
    return int(value)


@given(
    st.one_of(
        st.integers(-(2**65), 2**65),
        st.floats(),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
        st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, math.inf]),
    )
)
def test_int_or_none_fast_path_is_unchanged(value: object) -> None:
    got = _int_or_none(value)
    expected = _int_or_none_reference(value)
    assert got == expected and type(got) is type(expected)


def _fired_data_reference(
    trigger: TriggerState, count: int, now_ms: int, slot: int, following: int | None, catch_up: bool
) -> dict[str, Any]:
    """The trigger_fired payload as the fire path built it before (three dict merges)."""
    upcoming: dict[str, Any] = {}
    if following is not None:
        upcoming = {
            "next_fire_at": following,
            "next_fire_in": max(0.0, (following - now_ms) / 1000),
        }
    extra: dict[str, Any] = {"scheduled_at": slot, **upcoming}
    if catch_up:
        extra["catch_up"] = True
    return {
        "trigger_id": trigger.id,
        "trigger_type": trigger.trigger_type,
        "name": trigger.description or trigger.id,
        "task": trigger.task,
        "last_fired_at": now_ms,
        "fire_count": count,
        **extra,
    }


@given(st.integers(1, 50), st.integers(0, 3), st.sampled_from(["fire_once", "fire_all", "skip"]))
def test_fired_payload_keys_and_order_are_unchanged(late: int, count: int, misfire: str) -> None:
    from projections.session import ColonyState
    from projections.trigger_commands import decide_fires

    step = 60_000
    trigger = TriggerState(
        id="t1",
        trigger_type="timer",
        trigger_config={"interval_minutes": 1, "misfire": misfire},
        task="x",
        active=True,
        fire_count=count,
        anchor_at=T0,
    )
    colony = ColonyState(colony_id="c", colony_name="c", agent_path="/c")
    state = SessionState(
        session_id="s",
        live=True,
        loaded_at=(T0 - 1) / 1000,
        colony=colony,
        triggers={"t1": trigger},
    )
    now_ms = T0 + late * step + 5
    events = decide_fires(state, "s", {"t1"}, now_ms)
    fired = [e for e in events if e.type == "trigger_fired"]
    assert fired
    for i, event in enumerate(fired):
        data = event.data["data"]
        slot = data["scheduled_at"]
        expected = _fired_data_reference(
            trigger,
            count + i + 1,
            now_ms,
            slot,
            T0 + (late + 1) * step,
            data.get("catch_up", False),
        )
        assert list(data.items()) == list(expected.items())
        assert event.event_id == str(fire_event_id("s", "t1", slot))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=3), json_values, max_size=3),
    st.dictionaries(st.text(max_size=3), json_values, max_size=3),
    st.text(max_size=5),
    st.integers(0, 100),
)
def test_colony_to_dict_equals_asdict(
    worker_info: dict[str, Any], metadata: dict[str, Any], goal: str, nodes: int
) -> None:
    import orjson

    from projections.session import ColonyState

    colony = ColonyState(
        colony_id="c",
        colony_name="n",
        agent_path="/a",
        goal=goal,
        node_count=nodes,
        worker_info=worker_info,
        metadata=metadata,
    )
    assert colony.to_dict() == dataclasses.asdict(colony)
    assert orjson.dumps(colony.to_dict()) == orjson.dumps(dataclasses.asdict(colony))
    assert ColonyState.from_dict(colony.to_dict()) == colony
