"""Which hivelog node runs a live session, and the pure decision to adopt an orphan.

Any node can serve any session's commands (they all read one log); "running" a
session means owning its live work: its timers fire on that node. The runner is
recorded in `session_created` / `session_resumed` (`runner_node`) and changed only
by `session_adopted`. A node adopts a live session whose runner is not among the
live nodes (its liveness lease expired: crashed, partitioned, stopped without
stopping its sessions). The append carries the expected version, so when several
nodes try at once exactly one wins, and the others re-decide on the new state
(the runner is alive again) and append nothing.
"""

from __future__ import annotations

from collections.abc import Collection

from eventstore import NewEvent
from projections.envelope import new_event
from projections.session import SessionState

SESSION_ADOPTED = "session_adopted"


def needs_adoption(state: SessionState | None, alive: Collection[str]) -> bool:
    return state is not None and state.live and state.runner_node not in alive


def decide_adopt(
    state: SessionState | None, me: str, alive: Collection[str], now: float
) -> list[NewEvent]:
    """`session_adopted` if the session is live and its runner is not alive; else nothing."""
    if state is None or not needs_adoption(state, alive) or me not in alive:
        return []
    body = {
        "session_id": state.session_id,
        "runner_node": me,
        "previous_runner_node": state.runner_node,
        "reason": "runner node not alive (liveness lease expired)",
    }
    return [new_event(SESSION_ADOPTED, body, timestamp=now)]
