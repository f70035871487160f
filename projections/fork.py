"""hive 54fd8db's fork (POST /api/sessions with `colony_id` + `source_session_id`,
RS:186-218, 262-432) as a pure decider on the source session.

The source is locked by `colony_created` on its own stream (folds
`colony_spawned`, `spawned_colony_id`); the new colony session then records
`source_session_id` in its `session_created`. Copying the transcript and
compacting it is runtime work hive does in the background; nothing here does it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventstore import NewEvent
from projections.envelope import new_event
from projections.errors import Conflict, NotFound
from projections.session import LEGACY_PHASES, SessionState

SIBLING_FORK = (
    "source colony has no pending new_colony pivot — the popup must be opened via "
    "task_create(new_colony=true) first."
)


@dataclass(frozen=True, slots=True)
class Fork:
    source_session_id: str
    colony_id: str
    colony_path: str
    new_session_id: str
    now: float


def check_fork(state: SessionState | None, cmd: Fork) -> SessionState:
    """hive's checks on the source, in order (404, then the three 409s)."""
    if state is None or not state.live:
        raise NotFound(f"source_session_id '{cmd.source_session_id}' is not a live session")
    phase = LEGACY_PHASES.get(state.queen_phase, state.queen_phase)
    if phase == "colony" or state.colony is not None:
        raise Conflict(SIBLING_FORK)
    if phase != "independent":
        raise Conflict(
            "source session must be in 'independent' or 'colony' phase to fork into a "
            f"colony (currently '{state.queen_phase}')."
        )
    if state.colony_spawned:
        raise Conflict("source session already spawned a colony — cannot fork again.")
    return state


def decide_fork_source(state: SessionState | None, cmd: Fork) -> list[NewEvent]:
    """`colony_created` on the source (hive's payload, plus `colony_name`, which the
    3c390c9e frontend reads)."""
    check_fork(state, cmd)
    data = {
        "colony_id": cmd.colony_id,
        "colony_name": cmd.colony_id,
        "colony_path": cmd.colony_path,
        "queen_session_id": cmd.new_session_id,
        "is_new": True,
        "compaction_status": "skipped",
    }
    return [new_event("colony_created", data, timestamp=cmd.now, colony_id=cmd.colony_id)]
