"""Folding one append's events as a run gives the catalogue folding them one by one
gives (`catalogue.apply_run`, `session.fold_session_run`; issue 15)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import RecordedEvent
from projections import catalogue as cat
from projections.envelope import new_event
from projections.session import (
    LAST_MESSAGE_CHARS,
    SessionEvent,
    SessionState,
    fold_session,
    fold_session_run,
)

T0 = 1_790_000_000.0
TYPES = [
    "session_created",
    "session_resumed",
    "session_stopped",
    "worker_colony_loaded",
    "colony_unloaded",
    "colony_metadata_updated",
    "trigger_available",
    "trigger_activated",
    "trigger_fired",
    "trigger_fire_skipped",
    "missed_triggers",
    "trigger_deactivated",
    "trigger_removed",
    "client_input_received",
    "llm_turn_complete",
    "client_output_delta",
    "loop_state_changed",
    "tool_call_started",
    "tool_call_completed",
    "execution_started",
    "queen_phase_changed",
    "something_else",
]

event_specs = st.tuples(
    st.sampled_from(TYPES),
    st.sampled_from(["t1", "t2"]),
    st.floats(0, 1000),
    st.sampled_from(["queen", "worker:1"]),
    st.integers(0, 5),
    st.text(max_size=4),
)


def _apply_in_runs(
    catalogue: cat.CatalogueState, events: list[RecordedEvent], cuts: list[int]
) -> None:
    """`apply_run` over `events` cut into runs of the sizes in `cuts`, then the rest."""
    i = 0
    for size in [*cuts, len(events)]:
        if i >= len(events):
            break
        cat.apply_run(catalogue, events[i : i + size])
        i += size


def _data(kind: str, trigger: str, n: int, text: str) -> dict[str, Any]:
    return {
        "trigger_id": trigger,
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": n + 1},
        "name": text,
        "task": text,
        "fire_count": n,
        "scheduled_at": int(T0 * 1000) + n * 1000,
        "handled_through": int(T0 * 1000) + n * 2000,
        "count": n,
        "content": text,
        "snapshot": text,
        "phase": text or "colony",
        "metadata": {text: n},
        "colony_id": "c",
        "colony_name": text,
        "agent_path": "/a",
        "state": ["executing", "awaiting_user", "interrupted"][n % 3],
        "tool_use_id": f"u{n}",
        "execution_id": f"e{n}",
    }


def _recorded(specs: list[tuple[str, str, float, str, int, str]]) -> list[RecordedEvent]:
    out = []
    for i, (kind, trigger, at, stream, n, text) in enumerate(specs, start=1):
        event = new_event(kind, _data(kind, trigger, n, text), timestamp=T0 + at, stream_id=stream)
        raw = orjson.dumps(event.data)
        out.append(RecordedEvent("s1", i, i, f"id{i}", kind, raw, None, 0))
    return out


@settings(max_examples=300)
@given(st.lists(event_specs, max_size=25), st.lists(st.integers(1, 6), max_size=25))
def test_runs_fold_to_the_catalogue_of_single_folds(
    specs: list[tuple[str, str, float, str, int, str]], cuts: list[int]
) -> None:
    events = _recorded(specs)
    one_by_one = cat.fold_all(events)
    runs = cat.CatalogueState()
    _apply_in_runs(runs, events, cuts)
    assert runs.position == one_by_one.position
    assert runs.sessions == one_by_one.sessions
    assert cat.encode(runs) == cat.encode(one_by_one)  # also the order of every dict


def test_a_run_of_other_streams_or_mixed_streams_is_applied_one_by_one() -> None:
    events = _recorded([("session_created", "t1", 0.0, "queen", 0, "")] * 2)
    mixed = [events[0], events[1]._replace(stream_id="s2")]
    assert cat.encode(cat.apply_run(cat.CatalogueState(), mixed)) == cat.encode(cat.fold_all(mixed))
    assert cat.apply_run(cat.CatalogueState(), []).position == 0


# Every type the session fold names (and two it does not), for envelopes of any shape.
ALL_TYPES = [
    *TYPES,
    "session_adopted",
    "queen_identity_selected",
    "colony_created",
    "client_input_requested",
    "execution_completed",
    "execution_failed",
    "trigger_updated",
    "webhook_received",
    "trigger_missed_resolved",
    "hive_session_imported",
]
STAMPS = [
    None,  # no envelope time: the commit time is used
    "2026-03-28T22:30:00.123456+00:00",
    "2026-03-28T22:30:00",  # naive (taken as UTC)
    "2026-03-29T01:30:00+02:00",
    "not a time",
    17,
]
odd_specs = st.tuples(
    st.sampled_from(ALL_TYPES),
    st.sampled_from(STAMPS),
    st.sampled_from(["queen", "worker", "worker:2", None, 3]),
    st.integers(0, 3),  # shape: 0-1 an envelope, 2 data not an object, 3 not an object
    st.integers(0, 4),
    st.sampled_from(["", "hi", "x" * 200, None]),
    st.integers(0, 10**9),
)


def _odd(specs: list[tuple[Any, ...]], sid: str = "s1") -> list[RecordedEvent]:
    out = []
    for i, (kind, stamp, stream, shape, n, text, recorded_us) in enumerate(specs, start=1):
        data: Any = {
            **_data(kind, "t1", n, text if isinstance(text, str) else ""),
            "tool_use_id": f"u{n % 2}",  # started and completed calls meet
            "content": text,
            "snapshot": text if n % 2 else "",
            "activity": ["executing", "awaiting_user", None][n % 3],
            "questions": [text] if n else None,
            "model": text,
            "runner_node": text,
        }
        body: Any = {"type": kind, "stream_id": stream, "data": data, "execution_id": f"e{n}"}
        if stamp is not None:
            body["timestamp"] = stamp
        if shape == 2:
            body["data"] = [n]
        elif shape == 3:
            body = [kind, n]
        raw = orjson.dumps(body)
        out.append(RecordedEvent(sid, i, i, f"id{i}", kind, raw, None, recorded_us + i))
    return out


@settings(max_examples=400)
@given(
    st.lists(odd_specs, max_size=30),
    st.lists(st.integers(1, 8), max_size=30),
    st.lists(odd_specs, max_size=6),
)
def test_runs_fold_like_single_folds_for_any_envelope(
    specs: list[tuple[Any, ...]], cuts: list[int], before: list[tuple[Any, ...]]
) -> None:
    """Any mix of types, times (none, naive, offset, garbage), worker and queen streams,
    payloads that are not objects: the runs give the same catalogue byte for byte,
    also when a run continues a state folded one event at a time."""
    prefix = _odd(before)
    events = [
        e._replace(version=e.version + len(prefix), position=e.position + len(prefix))
        for e in _odd(specs)
    ]
    one_by_one = cat.fold_all([*prefix, *events])
    runs = cat.fold_all(prefix)
    _apply_in_runs(runs, events, cuts)
    assert runs.position == one_by_one.position
    assert runs.sessions == one_by_one.sessions
    assert cat.encode(runs) == cat.encode(one_by_one)


def test_a_run_does_not_change_the_state_it_started_from() -> None:
    """The run's copy is private: the state before it (held by a reader) stays as it was."""
    events = _odd([("session_created", None, "queen", 0, 1, "hi", 5)] * 3)
    before = cat.fold_all(events[:1])
    held = before.sessions["s1"]
    encoded = orjson.dumps(held.to_dict())
    cat.apply_run(before, events[1:])
    assert before.sessions["s1"] is not held
    assert orjson.dumps(held.to_dict()) == encoded
    assert before.sessions["s1"].version == 3


def test_message_events_set_the_count_and_the_last_message() -> None:
    """The message rule itself (the single and the run fold share it, so the properties
    above cannot catch a change to it): input counts and shows its content, truncated; a
    turn counts; a delta shows its snapshot, else its content, and an empty one nothing."""
    long = "x" * (LAST_MESSAGE_CHARS + 5)
    steps: list[tuple[str, dict[str, Any], int, str]] = [
        ("client_input_received", {"content": long}, 1, long[:LAST_MESSAGE_CHARS]),
        ("llm_turn_complete", {}, 2, long[:LAST_MESSAGE_CHARS]),
        ("client_output_delta", {"snapshot": "snap", "content": "c"}, 2, "snap"),
        ("client_output_delta", {"content": "only content"}, 2, "only content"),
        ("client_output_delta", {"snapshot": "", "content": ""}, 2, "only content"),
        ("client_output_delta", {"content": 7}, 2, "only content"),
    ]
    singly = SessionState(session_id="s1")
    run: list[SessionEvent] = []
    for version, (kind, data, count, last) in enumerate(steps, start=1):
        body = {"type": kind, "stream_id": "queen", "data": data}
        singly = fold_session(singly, kind, body, version, T0 + version)
        run.append((kind, body, version, T0 + version))
        assert (singly.message_count, singly.last_message) == (count, last), kind
    folded = fold_session_run(SessionState(session_id="s1"), run)
    assert (folded.message_count, folded.last_message) == (2, "only content")
