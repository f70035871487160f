"""Event types only hivelog's own commands may write: producers are refused them.

The session projection trusts lifecycle and trigger events to mean that a command
was decided on the state (a `session_stopped` makes a session cold, a
`trigger_fired` counts a fire), so a runtime appending them over HTTP could forge
state. Every type a decider produces is listed here, in one of two sets; a test
(tests/api/http/test_producers.py) reads the deciders' source and fails when a decider
writes a type that is in neither, so a new command cannot forget to decide.
"""

from __future__ import annotations

from typing import Final

from projections.triggers import TRIGGER_EVENT_TYPES

LIFECYCLE_TYPES: Final = frozenset(
    {
        "session_created",
        "session_resumed",
        "session_adopted",
        "session_stopped",
        "session_deleted",
        "session_erased",
        "worker_colony_loaded",
        "colony_unloaded",
        "colony_metadata_updated",
        "colony_created",  # locks the source DM of a fork (projections/fork.py)
        "colony_claimed",  # names a colony's canonical session in `$colony-<id>`
        "agent_deleted",
    }
)

# Written by deciders too, but hive's runtime emits them itself (a queen changes phase
# or identity mid-run); the fold takes them from either source the same way.
RUNTIME_TYPES_ALSO_DECIDED: Final = frozenset({"queen_phase_changed", "queen_identity_selected"})

COMMAND_ONLY_TYPES: Final = LIFECYCLE_TYPES | TRIGGER_EVENT_TYPES


def is_command_only(event_type: str) -> bool:
    """Whether only a hivelog command may append this type."""
    return event_type in COMMAND_ONLY_TYPES
