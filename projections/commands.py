"""Pure deciders: `(state, command) -> events`, or a DomainError with hive's status.

Every input a decision needs is in the command, including "now" and the facts
read from an agent folder, so deciding does no I/O and replays are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventstore import NewEvent
from projections.envelope import new_event
from projections.errors import Conflict, Invalid, session_not_found
from projections.session import HEAD_PHASES, LEGACY_PHASES, ColonyState, SessionState


@dataclass(frozen=True, slots=True)
class ColonyFacts:
    """What loading a colony read from its folder; recorded in `worker_colony_loaded`."""

    colony_id: str
    colony_name: str
    agent_path: str
    worker_name: str
    description: str = ""
    goal: str = ""
    node_count: int = 1
    intro_message: str = ""
    worker_info: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    triggers: tuple[dict[str, Any], ...] = ()  # triggers.json entries, validated


@dataclass(frozen=True, slots=True)
class Queen:
    queen_id: str
    name: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class StartSession:
    """POST /api/sessions: create `session_id`, or resume it when `resume` is set."""

    session_id: str
    now: float
    queen: Queen
    resume: bool = False
    initial_phase: str | None = None
    colony: ColonyFacts | None = None
    model: str | None = None
    initial_prompt: str | None = None
    runner_node: str | None = None  # the hivelog node that will run it
    source_session_id: str | None = None  # hive 54fd8db's fork: the DM it came from


def check_phase(phase: object) -> str | None:
    """hive 54fd8db's rule (QLT:84-108): legacy names map to `colony`/`independent`, and
    the result must be one of those two. The name given is kept as recorded (so a
    3c390c9e client that asked for `working` still reads `working` back)."""
    if phase is None or phase == "":
        return None
    mapped = LEGACY_PHASES.get(phase, phase) if isinstance(phase, str) else phase
    if mapped not in HEAD_PHASES:
        raise Invalid(f"Invalid initial_phase '{phase}'", valid=sorted(HEAD_PHASES))
    assert isinstance(phase, str)
    return phase


def colony_events(facts: ColonyFacts, now: float) -> list[NewEvent]:
    """`worker_colony_loaded` with every fact, then each trigger available and active.

    hive auto-starts the triggers.json entries on load; at 54fd8db only those whose
    `enabled` is not false (a missing key means true, SM:963-1053).
    """
    loaded = {
        "colony_id": facts.colony_id,
        "colony_name": facts.colony_name,
        "agent_path": facts.agent_path,
        "goal": facts.goal,
        "node_count": facts.node_count,
        "worker_name": facts.worker_name,
        "description": facts.description,
        "intro_message": facts.intro_message,
        "worker_info": facts.worker_info,
        "metadata": facts.metadata,
        "triggers": list(facts.triggers),
    }
    cid = facts.colony_id
    events = [new_event("worker_colony_loaded", loaded, timestamp=now, colony_id=cid)]
    for trigger in facts.triggers:
        body = {
            "trigger_id": trigger["id"],
            "trigger_type": trigger["trigger_type"],
            "trigger_config": trigger.get("trigger_config", {}),
            "name": trigger.get("name") or trigger["id"],
            "entry_node": facts.worker_name,
            "task": trigger.get("task", ""),
        }
        events.append(new_event("trigger_available", body, timestamp=now, colony_id=cid))
    for trigger in facts.triggers:
        if trigger.get("enabled") is False:
            continue
        body = {
            "trigger_id": trigger["id"],
            "trigger_type": trigger["trigger_type"],
            "trigger_config": trigger.get("trigger_config", {}),
            "name": trigger.get("name") or trigger["id"],
            "entry_node": facts.worker_name,
            "task": trigger.get("task", ""),
        }
        events.append(new_event("trigger_activated", body, timestamp=now, colony_id=cid))
    return events


def unload_events(state: SessionState, now: float) -> list[NewEvent]:
    """hive removes every trigger on unload; we add the `colony_unloaded` fact it lacked."""
    assert state.colony is not None
    cid = state.colony.colony_id
    events = [
        new_event(
            "trigger_removed", _trigger_ref(t.id, t.description), timestamp=now, colony_id=cid
        )
        for t in state.triggers.values()
    ]
    body = {"colony_id": cid, "agent_path": state.colony.agent_path}
    events.append(new_event("colony_unloaded", body, timestamp=now, colony_id=cid))
    return events


def _trigger_ref(trigger_id: str, name: str) -> dict[str, Any]:
    return {"trigger_id": trigger_id, "name": name or trigger_id}


def _phase_event(phase: str, colony: ColonyState | ColonyFacts | None, now: float) -> NewEvent:
    body: dict[str, Any] = {"phase": phase}
    if colony is not None:
        body["agent_path"] = colony.agent_path
    return new_event("queen_phase_changed", body, timestamp=now)


def _identity(queen: Queen, now: float) -> NewEvent:
    body = {"queen_id": queen.queen_id, "name": queen.name, "title": queen.title}
    return new_event("queen_identity_selected", body, timestamp=now)


def decide_start(state: SessionState | None, cmd: StartSession) -> list[NewEvent]:
    """Create a new session, resume a cold one, or return a live one unchanged."""
    phase = check_phase(cmd.initial_phase)
    if not cmd.resume:
        if state is not None:
            raise Conflict(f"Session '{cmd.session_id}' already exists")
        return _created(cmd, phase)
    if state is None:
        raise session_not_found(cmd.session_id)
    if state.live:
        same = cmd.colony is None or (
            state.colony is not None and state.colony.agent_path == cmd.colony.agent_path
        )
        if not same:
            raise Conflict(f"Session '{cmd.session_id}' is live with another colony loaded")
        return []  # idempotent: resuming a live id returns it (hive #6334)
    return _resumed(state, cmd, phase)


def _created(cmd: StartSession, phase: str | None) -> list[NewEvent]:
    body: dict[str, Any] = {
        "session_id": cmd.session_id,
        "queen_id": cmd.queen.queen_id,
        "model": cmd.model,
        "initial_phase": cmd.initial_phase,
        "initial_prompt": cmd.initial_prompt,
        "runner_node": cmd.runner_node,
    }
    if cmd.source_session_id is not None:
        body["source_session_id"] = cmd.source_session_id
    events = [
        new_event("session_created", body, timestamp=cmd.now),
        _identity(cmd.queen, cmd.now),
    ]
    if cmd.colony is not None:
        events.extend(colony_events(cmd.colony, cmd.now))
    chosen = phase or ("working" if cmd.colony is not None else "independent")
    events.append(_phase_event(chosen, cmd.colony, cmd.now))
    return events


def _resumed(state: SessionState, cmd: StartSession, phase: str | None) -> list[NewEvent]:
    body = {
        "session_id": cmd.session_id,
        "model": cmd.model,
        "initial_phase": cmd.initial_phase,
        "runner_node": cmd.runner_node,
    }
    events = [new_event("session_resumed", body, timestamp=cmd.now)]
    if cmd.queen.queen_id != state.queen_id or not state.queen_name:
        events.append(_identity(cmd.queen, cmd.now))
    colony: ColonyState | ColonyFacts | None = state.colony
    if cmd.colony is not None and (
        state.colony is None or state.colony.agent_path != cmd.colony.agent_path
    ):
        if state.colony is not None:
            events.extend(unload_events(state, cmd.now))
        events.extend(colony_events(cmd.colony, cmd.now))
        colony = cmd.colony
        default = "working"
    else:
        # The recorded colony comes back from the log, as hive's auto-load on resume,
        # which switches the phase to "reviewing".
        default = "reviewing" if colony is not None else "independent"
    chosen = phase or default
    if chosen != state.queen_phase:
        events.append(_phase_event(chosen, colony, cmd.now))
    return events


def require_live(state: SessionState | None, session_id: str) -> SessionState:
    """Live-only routes: unknown and cold ids are both 404, as in hive."""
    if state is None or not state.live:
        raise session_not_found(session_id)
    return state


def decide_stop(state: SessionState | None, session_id: str, now: float) -> list[NewEvent]:
    require_live(state, session_id)
    body = {"session_id": session_id, "reason": "stopped"}
    return [new_event("session_stopped", body, timestamp=now)]


def decide_load_colony(
    state: SessionState | None, session_id: str, facts: ColonyFacts, now: float
) -> list[NewEvent]:
    live = require_live(state, session_id)
    if live.colony is not None:
        raise Conflict(f"Session '{session_id}' already has colony '{live.colony.colony_id}'")
    return colony_events(facts, now)


def decide_unload_colony(state: SessionState | None, session_id: str, now: float) -> list[NewEvent]:
    live = require_live(state, session_id)
    if live.colony is None:
        raise Conflict("No colony loaded in this session")
    return unload_events(live, now)


def decide_metadata(
    state: SessionState | None, agent_path: str, changes: dict[str, Any], now: float
) -> list[NewEvent]:
    """Record a metadata.json edit in a session that has this colony loaded."""
    if state is None or state.colony is None or state.colony.agent_path != agent_path:
        return []
    body = {"agent_path": agent_path, "metadata": changes}
    cid = state.colony.colony_id
    return [new_event("colony_metadata_updated", body, timestamp=now, colony_id=cid)]
