"""The pure ownership rules: which node runs a session, and when another adopts it."""

from __future__ import annotations

from eventstore import NewEvent
from projections.ownership import decide_adopt, needs_adoption
from projections.session import SessionState, fold_session


def fold(state: SessionState, event: NewEvent, version: int) -> SessionState:
    body = event.data
    assert isinstance(body, dict)
    return fold_session(state, event.type, body, version, 1.0)


def live_on(node: str | None) -> SessionState:
    return SessionState(session_id="s1", version=3, live=True, runner_node=node)


def test_adopt_only_when_the_runner_is_dead() -> None:
    assert decide_adopt(live_on("a"), "b", {"a", "b"}, 1.0) == []
    (event,) = decide_adopt(live_on("a"), "b", {"b"}, 1.0)
    assert event.type == "session_adopted"
    assert event.data["data"]["runner_node"] == "b"
    assert event.data["data"]["previous_runner_node"] == "a"
    assert fold(live_on("a"), event, 4).runner_node == "b"


def test_no_adoption_of_cold_sessions_or_by_a_dead_node() -> None:
    cold = SessionState(session_id="s1", version=3, live=False, runner_node="a")
    assert not needs_adoption(cold, {"b"})
    assert decide_adopt(cold, "b", {"b"}, 1.0) == []
    assert decide_adopt(live_on("a"), "b", set(), 1.0) == []  # we are not alive ourselves
    assert decide_adopt(None, "b", {"b"}, 1.0) == []


def test_sessions_without_a_recorded_runner_are_adopted() -> None:
    (event,) = decide_adopt(live_on(None), "b", {"b"}, 1.0)
    assert fold(live_on(None), event, 4).runner_node == "b"


def test_stop_clears_the_runner() -> None:
    stopped = fold_session(live_on("a"), "session_stopped", {"data": {}}, 4, 2.0)
    assert stopped.runner_node is None and not stopped.live
