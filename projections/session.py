"""One session's state, folded from its stream: `fold_session(state, event) -> state`.

Pure and deterministic: time comes from each event's envelope timestamp, so a
rebuild from position 0 gives exactly the state the live service holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from projections.activity import (
    FOLDED_TYPES,
    ActivityState,
    fold_activity,
    fold_worker,
    is_worker,
    touches,
)
from projections.envelope import payload
from projections.triggers import TRIGGER_EVENT_TYPES, TriggerState, fold_trigger

# hive 3c390c9e stored these; hive 54fd8db maps the legacy names (working/reviewing ->
# colony, incubating -> independent) and accepts only HEAD_PHASES (QLT:84-108).
QUEEN_PHASES = ("independent", "incubating", "working", "reviewing")
HEAD_PHASES = ("colony", "independent")
LEGACY_PHASES = {"working": "colony", "reviewing": "colony", "incubating": "independent"}
DEFAULT_QUEEN_ID = "queen_technology"
LAST_MESSAGE_CHARS = 120


@dataclass(frozen=True, slots=True)
class ColonyState:
    """A loaded colony's facts, as read from its folder when it was loaded."""

    colony_id: str
    colony_name: str
    agent_path: str
    worker_name: str = ""
    description: str = ""
    goal: str = ""
    node_count: int = 1
    intro_message: str = ""
    worker_info: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Shallow, like `TriggerState.to_dict` (the dicts are shared, never mutated):
        `dataclasses.asdict` deep-copies, and checkpoints encode thousands of these."""
        return {name: getattr(self, name) for name in _COLONY_FIELDS}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> ColonyState:
        return cls(**value)


_COLONY_FIELDS = tuple(f.name for f in fields(ColonyState))


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    version: int = 0  # stream version folded up to (the expected version for the next append)
    created_at: float = 0.0  # epoch seconds
    last_active_at: float = 0.0
    loaded_at: float = 0.0  # when it last became live
    live: bool = False
    queen_id: str = DEFAULT_QUEEN_ID
    queen_name: str = ""  # display name
    queen_title: str = ""
    queen_phase: str = "independent"
    model: str | None = None
    colony: ColonyState | None = None
    triggers: dict[str, TriggerState] = field(default_factory=dict)
    colony_spawned: bool = False
    spawned_colony_name: str | None = None
    runner_node: str | None = None  # the hivelog node running it (projections/ownership.py)
    message_count: int = 0
    last_message: str = ""
    event_counts: dict[str, int] = field(default_factory=dict)
    activity: ActivityState = field(default_factory=ActivityState)  # projections/activity.py

    @property
    def spawned_colony_id(self) -> str | None:
        """hive 54fd8db's name for the spawned colony (colonies are named by id there)."""
        return self.spawned_colony_name

    def to_dict(self) -> dict[str, Any]:
        value = {f: getattr(self, f) for f in self.__dataclass_fields__}
        value["colony"] = self.colony.to_dict() if self.colony else None
        value["triggers"] = [t.to_dict() for t in self.triggers.values()]
        value["activity"] = self.activity.to_dict()
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> SessionState:
        fields = dict(value)
        colony = fields.get("colony")
        fields["colony"] = ColonyState.from_dict(colony) if colony else None
        fields["triggers"] = {t["id"]: TriggerState.from_dict(t) for t in fields["triggers"]}
        activity = fields.get("activity")
        fields["activity"] = ActivityState.from_dict(activity) if activity else ActivityState()
        return cls(**fields)


_SESSION_FIELDS = tuple(f.name for f in fields(SessionState))
_new = object.__new__
_set = object.__setattr__


def _evolve(previous: SessionState, changes: dict[str, Any]) -> SessionState:
    """`dataclasses.replace(previous, **changes)` without its per-field checks and
    `__init__` (~2x faster): the session fold copies the state once per event, and
    SessionState has no `__post_init__` (every field has a default or is given)."""
    new = _new(SessionState)
    for name in _SESSION_FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(previous, name))
    return new


def _runner(data: dict[str, Any]) -> str | None:
    value = data.get("runner_node")
    return value if isinstance(value, str) and value else None


def _text(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def _colony_from(data: dict[str, Any]) -> ColonyState:
    node_count = data.get("node_count")
    return ColonyState(
        colony_id=_text(data, "colony_id"),
        colony_name=_text(data, "colony_name") or _text(data, "colony_id"),
        agent_path=_text(data, "agent_path"),
        worker_name=_text(data, "worker_name"),
        description=_text(data, "description"),
        goal=_text(data, "goal"),
        node_count=node_count if isinstance(node_count, int) else 1,
        intro_message=_text(data, "intro_message"),
        worker_info=data["worker_info"] if isinstance(data.get("worker_info"), dict) else {},
        metadata=data["metadata"] if isinstance(data.get("metadata"), dict) else {},
    )


def fold_session(
    state: SessionState, event_type: str, body: dict[str, Any], version: int, ts: float
) -> SessionState:
    """(state, event) -> state for one event of the session's stream.

    `body` is the stored envelope, `version` the event's stream version and `ts`
    its envelope time (epoch seconds).
    """
    counts = dict(state.event_counts)
    return _evolve(state, _changes(state, event_type, body, version, ts, counts))


SessionEvent = tuple[str, dict[str, Any], int, float]  # (type, envelope, version, time)


def fold_session_run(state: SessionState, events: Sequence[SessionEvent]) -> SessionState:
    """`fold_session` over consecutive events of one session's stream, one at a time:
    the same state, but copied once for the run instead of once per event (a timer
    round appends several fires to a session at once; a rebuild folds a session's
    events in runs). The copy is private until it is returned, so updating it in place
    between events is not observable.

    Most events (deltas, turns, tool calls) change only the version, the times, the
    counts and maybe the activity, message count or last message: those fields are
    kept in locals and the other fields are not touched. Any other event goes through
    `_changes` on the draft with those locals written back first, exactly as
    `fold_session` would fold it (a property test compares the two)."""
    if len(events) == 1:
        return fold_session(state, *events[0])
    draft = _evolve(state, {"event_counts": dict(state.event_counts)})
    counts = draft.event_counts  # the draft's own: counted in place
    version, last_active, created = draft.version, draft.last_active_at, draft.created_at
    activity, message_count, last_message = draft.activity, draft.message_count, draft.last_message
    for event_type, body, event_version, ts in events:
        kind = _RUN_KIND.get(event_type, _OTHER)
        if kind is _GENERAL:  # the general path, on the draft brought up to date
            _store(draft, version, last_active, created, activity, message_count, last_message)
            for name, value in _changes(draft, event_type, body, event_version, ts, counts).items():
                _set(draft, name, value)
            version, last_active, created = draft.version, draft.last_active_at, draft.created_at
            activity, message_count = draft.activity, draft.message_count
            last_message = draft.last_message
            continue
        counts[event_type] = counts.get(event_type, 0) + 1
        if is_worker(body):  # (the reset types, which fold_activity checks first, are _GENERAL)
            activity = fold_worker(activity, event_type, ts, last_active or None)
        elif event_type in FOLDED_TYPES:
            activity = fold_activity(
                activity, event_type, body, event_version, ts, last_active or None
            )
        version = event_version
        last_active = max(last_active, ts)
        if not created:
            created = ts
        if kind is _MESSAGE:
            message_count, last_message = _messages(
                event_type, payload(body), message_count, last_message
            )
    _store(draft, version, last_active, created, activity, message_count, last_message)
    return draft


def _store(
    draft: SessionState,
    version: int,
    last_active: float,
    created: float,
    activity: ActivityState,
    message_count: int,
    last_message: str,
) -> None:
    """Write the run's local fields back into its private draft."""
    _set(draft, "version", version)
    _set(draft, "last_active_at", last_active)
    _set(draft, "created_at", created)
    _set(draft, "activity", activity)
    _set(draft, "message_count", message_count)
    _set(draft, "last_message", last_message)


MESSAGE_TYPES = ("client_input_received", "llm_turn_complete", "client_output_delta")


def _messages(event_type: str, data: dict[str, Any], count: int, last: str) -> tuple[int, str]:
    """The message count and last message after a message event (one of MESSAGE_TYPES):
    the one rule for `_changes` and the run fold."""
    if event_type == "client_input_received":
        return count + 1, _text(data, "content")[:LAST_MESSAGE_CHARS]
    if event_type == "llm_turn_complete":
        return count + 1, last
    snapshot = _text(data, "snapshot") or _text(data, "content")  # client_output_delta
    return count, snapshot[:LAST_MESSAGE_CHARS] if snapshot else last


# How the run folds an event type: _GENERAL through `_changes` (the types that change
# more than the version, times, counts, activity, message count and last message);
# _MESSAGE also through `_messages`; _OTHER (every other type) only the version,
# times, counts and activity.
_GENERAL, _MESSAGE, _OTHER = "general", "message", "other"
_RUN_KIND = {
    **dict.fromkeys(
        [
            *TRIGGER_EVENT_TYPES,
            "session_created",
            "session_resumed",
            "session_adopted",
            "session_stopped",
            "queen_identity_selected",
            "queen_phase_changed",
            "worker_colony_loaded",
            "colony_unloaded",
            "colony_metadata_updated",
            "colony_created",
        ],
        _GENERAL,
    ),
    **dict.fromkeys(MESSAGE_TYPES, _MESSAGE),
}


def _changes(
    state: SessionState,
    event_type: str,
    body: dict[str, Any],
    version: int,
    ts: float,
    counts: dict[str, int],
) -> dict[str, Any]:
    """The fields one event changes; `counts` is a copy of `state.event_counts` to count
    the event in (the caller's: each single fold copies it, a run copies it once)."""
    data = payload(body)
    counts[event_type] = counts.get(event_type, 0) + 1
    changes: dict[str, Any] = {
        "version": version,
        "last_active_at": max(state.last_active_at, ts),
        "event_counts": counts,
    }
    if touches(event_type, is_worker(body)):
        changes["activity"] = fold_activity(
            state.activity, event_type, body, version, ts, state.last_active_at or None
        )
    if not state.created_at:
        changes["created_at"] = ts
    if event_type in TRIGGER_EVENT_TYPES:  # first: timer fires are most of these events
        changes["triggers"] = fold_trigger(state.triggers, event_type, data, ts)
    elif event_type == "session_created":
        changes.update(created_at=ts, loaded_at=ts, live=True, runner_node=_runner(data))
        if isinstance(data.get("model"), str):
            changes["model"] = data["model"]
    elif event_type == "session_resumed":
        changes.update(loaded_at=ts, live=True, runner_node=_runner(data))
        if isinstance(data.get("model"), str):
            changes["model"] = data["model"]
    elif event_type == "session_adopted":
        changes["runner_node"] = _runner(data)
    elif event_type == "session_stopped":
        changes.update(live=False, runner_node=None)
    elif event_type == "queen_identity_selected":
        changes.update(
            queen_id=_text(data, "queen_id", state.queen_id),
            queen_name=_text(data, "name", state.queen_name),
            queen_title=_text(data, "title", state.queen_title),
        )
    elif event_type == "queen_phase_changed":
        changes["queen_phase"] = _text(data, "phase", state.queen_phase)
    elif event_type == "worker_colony_loaded":
        changes["colony"] = _colony_from(data)
    elif event_type == "colony_unloaded":
        changes.update(colony=None, triggers={})
    elif event_type == "colony_metadata_updated":
        meta = data.get("metadata")
        if state.colony is not None and isinstance(meta, dict):
            changes["colony"] = replace(state.colony, metadata={**state.colony.metadata, **meta})
    elif event_type == "colony_created":
        # 54fd8db's payload has only `colony_id`; hivelog's fork writes both (equal)
        spawned = _text(data, "colony_name") or _text(data, "colony_id") or None
        changes.update(colony_spawned=True, spawned_colony_name=spawned)
    elif event_type in MESSAGE_TYPES:
        changes["message_count"], changes["last_message"] = _messages(
            event_type, data, state.message_count, state.last_message
        )
    return changes
