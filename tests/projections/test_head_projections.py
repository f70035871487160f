"""Properties of hive 54fd8db's pure parts: id slugging, the create decider, the
activity fold and its snapshot view."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.activity import ActivityState, fold_activity, snapshot_view
from projections.errors import Invalid, NotFound
from projections.session import SessionState
from projections.trigger_create import CreateTrigger, decide_create, slug_id

NOW = 1_790_000_000.0


@given(st.text(max_size=80), st.sets(st.text(max_size=50), max_size=5))
def test_slug_is_hive_shaped_and_free(name: str, taken: set[str]) -> None:
    slug = slug_id(name, frozenset(taken))
    assert slug.startswith("user-") and slug not in taken
    base = slug_id(name, frozenset())
    assert slug == base or slug.startswith(base + "-")
    body = base.removeprefix("user-")
    assert 1 <= len(body) <= 40 and "--" not in body
    assert not body.startswith("-")  # (hive strips, then cuts: a cut may end in "-")
    assert all(c.isalnum() or c == "-" for c in body)


def test_slug_examples() -> None:
    assert slug_id("Daily digest!", frozenset()) == "user-daily-digest"
    assert slug_id("Daily digest!", frozenset({"user-daily-digest"})) == "user-daily-digest-2"
    assert slug_id("!!!", frozenset()) == "user-schedule"
    assert slug_id("x" * 60, frozenset()) == "user-" + "x" * 40


LIVE = SessionState(session_id="s", live=True, version=3)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300)
@given(
    ANY_JSON,
    ANY_JSON,
    st.one_of(st.none(), st.just("timer"), ANY_JSON),
    st.one_of(
        ANY_JSON,
        st.fixed_dictionaries(
            {},
            optional={
                "cron": st.sampled_from(["0 9 * * *", "*/5 * * * *", "bad", "", None]),
                "interval_minutes": st.one_of(st.integers(-2, 100), st.floats(-1, 100), st.none()),
            },
        ),
    ),
)
def test_create_refuses_or_emits_one_complete_activation(
    name: Any, task: Any, trigger_type: Any, config: Any
) -> None:
    cmd = CreateTrigger(name, task, trigger_type, config, NOW)
    try:
        trigger_id, events = decide_create(LIVE, "s", cmd)
    except Invalid:
        return
    (event,) = events
    data = event.data["data"]
    assert event.type == "trigger_activated" and data["trigger_id"] == trigger_id
    assert data["name"] == name.strip() and data["task"] == task.strip()
    stored = {k: v for k, v in data["trigger_config"].items() if not k.startswith("next_fire")}
    assert list(stored) in (["cron"], ["interval_minutes"])
    assert data["entry_node"] is None


def test_create_needs_a_live_session() -> None:
    cmd = CreateTrigger("n", "t", None, {"interval_minutes": 5}, NOW)
    with pytest.raises(NotFound):
        decide_create(None, "s", cmd)
    with pytest.raises(NotFound):
        decide_create(SessionState(session_id="s"), "s", cmd)


EVENT_TYPES = [
    "loop_state_changed",
    "execution_started",
    "execution_completed",
    "tool_call_started",
    "tool_call_completed",
    "client_input_requested",
    "client_input_received",
    "session_resumed",
    "llm_text_delta",
]
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(EVENT_TYPES),
        st.sampled_from(["executing", "awaiting_user", "interrupted", "bogus", None]),
        st.sampled_from(["t1", "t2", None]),
        st.sampled_from(["queen", "worker:1"]),
        st.floats(0, 1000),
    ),
    max_size=30,
)


@given(EVENTS, st.floats(0, 2000))
def test_snapshot_is_always_consistent(
    events: list[tuple[str, Any, Any, str, float]], later: float
) -> None:
    state = ActivityState()
    ts = NOW
    last_queen: float | None = None
    for version, (type_, activity, tool, stream, step) in enumerate(events, start=1):
        ts += step
        data = {"activity": activity, "tool_use_id": tool, "tool_name": "x"}
        body = {"type": type_, "stream_id": stream, "data": data, "timestamp": "t"}
        state = fold_activity(state, type_, body, version, ts)
        if stream == "queen":
            last_queen = ts
    snap = snapshot_view(state, len(events), ts + later, ts, last_queen)
    flags = [snap["is_executing"], snap["awaiting_input"], snap["interrupted"]]
    assert sum(flags) <= 1
    if not snap["is_executing"]:
        assert snap["current_tool_calls"] == []
    busy = snap["queen_busy_reason"]
    assert (busy == "interrupted") == snap["interrupted"]
    assert (busy == "awaiting_input") == snap["awaiting_input"]
    assert (busy in ("tool", "llm")) == snap["is_executing"]
    if snap["interrupt_cause"] is not None:
        assert snap["interrupted"]
    if state.activity == "executing" and last_queen is not None and ts + later - last_queen > 300:
        assert snap["interrupt_cause"] == "stale"


def test_resume_starts_the_fold_over() -> None:
    state = fold_activity(
        ActivityState(), "loop_state_changed", {"data": {"activity": "executing"}}, 1, time.time()
    )
    assert state.activity == "executing"
    state = fold_activity(state, "session_resumed", {}, 2, time.time())
    assert state.activity is None and snapshot_view(state, 2, time.time())["activity"] is None
