"""Deciding fires around derived ids the store already holds (`taken`): a property
over random schedules, backlogs, policies and taken subsets.

A taken fire id stands for this trigger id's outcome of that slot, recorded before
(the trigger removed and added again with an anchor before it). Before, the scheduler
could only poison the trigger. Now the decision leaves every taken id out: such a slot
is recorded as skipped (`fire_id_taken`) under an id derived from the taken one, never
fired again, and the rest of the decision is what it was.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import NewEvent
from projections.session import ColonyState, SessionState
from projections.trigger_commands import decide_fires
from projections.triggers import TriggerState, fold_trigger

MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % (60 * MIN)


def session(config: dict[str, Any], anchor: int, colony: bool) -> SessionState:
    trigger = TriggerState(
        id="c", trigger_type="timer", trigger_config=config, active=True, anchor_at=anchor
    )
    loaded = ColonyState(colony_id="k", colony_name="k", agent_path="/x") if colony else None
    return SessionState(session_id="s", live=True, colony=loaded, triggers={"c": trigger})


def body(event: NewEvent) -> dict[str, Any]:
    data: dict[str, Any] = event.data["data"]
    return data


def fold(state: SessionState, events: list[NewEvent]) -> TriggerState:
    triggers = state.triggers
    for e in events:
        triggers = fold_trigger(triggers, e.type, body(e))
    return triggers["c"]


@settings(max_examples=300, deadline=None)
@given(
    config=st.fixed_dictionaries(
        {
            "cron": st.sampled_from(["* * * * *", "*/5 * * * *", "0 * * * *"]),
            "misfire": st.sampled_from(["fire_once", "fire_all", "skip"]),
        }
    ),
    backlog=st.integers(0, 300 * MIN),
    colony=st.booleans(),
    picks=st.lists(st.integers(0, 200), max_size=12),
    also_derived=st.booleans(),
)
def test_taken_ids_are_left_out_and_their_slots_skipped(
    config: dict[str, Any], backlog: int, colony: bool, picks: list[int], also_derived: bool
) -> None:
    state = session(config, T0, colony)
    now = T0 + backlog + 1
    plain = decide_fires(state, "s", {"c"}, now)
    ids = [str(e.event_id) for e in plain]
    taken = {ids[i % len(ids)] for i in picks} if ids else set()
    if also_derived and taken:  # an id derived in place of a taken one is taken too
        first = decide_fires(state, "s", {"c"}, now, taken=frozenset(taken))
        taken |= {str(e.event_id) for e in first if str(e.event_id) not in ids}
    decided = decide_fires(state, "s", {"c"}, now, taken=frozenset(taken))
    assert decide_fires(state, "s", {"c"}, now, taken=frozenset(taken)) == decided  # pure
    assert len(decided) == len(plain)
    assert not {str(e.event_id) for e in decided} & taken
    fired_before = 0
    for old, new in zip(plain, decided, strict=True):
        if str(old.event_id) not in taken:
            assert (new.type, str(new.event_id)) == (old.type, str(old.event_id))
            if new.type == "trigger_fired":
                fired_before += 1
                assert body(new)["fire_count"] == fired_before  # no gap for a skipped slot
            continue
        if old.type == "missed_triggers":  # the record itself, under another id
            assert new.type == "missed_triggers" and body(new)["count"] == body(old)["count"]
            continue
        assert new.type == "trigger_fire_skipped"  # a fired or gated slot: never fired again
        assert body(new)["scheduled_at"] == body(old)["scheduled_at"]
        assert body(new)["reason"] == "fire_id_taken"
        assert body(new)["taken_event_id"] == str(old.event_id)
    # the schedule moves on just as far: every due slot is handled
    assert fold(state, decided).last_scheduled_at == fold(state, plain).last_scheduled_at
