"""What the queen is doing now, folded from the session's events (hive 54fd8db §2.2).

hive folds its in-memory ring buffer of the current process, so a resumed session
starts with activity null; here the fold restarts at every `session_created` /
`session_resumed`, which is the same rule written down. `seq` is the event's
stream version (the same number history and SSE serve as `seq`).

The view (`snapshot_view`) takes "now" as an argument: the 300 s stale rule turns
an "executing" queen whose last event is that old into an interrupted one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

STALE_SECONDS = 300.0
ACTIVITY_TYPES = frozenset(
    {
        "loop_state_changed",
        "execution_started",
        "execution_completed",
        "execution_failed",
        "tool_call_started",
        "tool_call_completed",
        "client_input_requested",
        "client_input_received",
    }
)
RESET_TYPES = frozenset({"session_created", "session_resumed"})
WORKER_TYPES = frozenset({"execution_started", "execution_completed", "execution_failed"})
FOLDED_TYPES = ACTIVITY_TYPES | RESET_TYPES


def is_worker(body: dict[str, Any]) -> bool:
    """hive skips events of worker streams in the queen's snapshot (EB:2127-2132)."""
    stream = body.get("stream_id")
    return isinstance(stream, str) and stream.startswith("worker")


def touches(event_type: str, worker: bool) -> bool:
    """Whether `fold_activity` would change anything: most events (queen deltas) do
    not, and the session fold skips the call for them (it is on the restart path)."""
    return worker or event_type in FOLDED_TYPES


ACTIVITIES = frozenset({"executing", "awaiting_user", "interrupted"})


class ActivityState(NamedTuple):
    """The queen's loop state since the session last became live.

    A NamedTuple rather than a frozen dataclass: it is rebuilt on every tool call and
    loop-state event while the log is folded at start, and a tuple is built ~10x faster.
    Never mutated (`tools` is replaced, never changed in place).
    """

    activity: str | None = None
    interrupt_cause: str | None = None
    park_reason: str | None = None
    questions: Any = None
    current_execution_id: str | None = None
    tools: dict[str, dict[str, Any]] = {}  # tool_use_id -> call
    pending_input: Any = None  # data of the last unanswered client_input_requested
    pending_input_seq: int | None = None
    worker_count: int = 0  # worker executions started minus ended
    # The newest queen event's time, kept without a write per event: while the newest
    # event is a queen event it is the session's `last_active_at`; a worker event
    # records the queen time it follows (`queen_at`) and its own (`worker_at`).
    queen_at: float | None = None
    worker_at: float | None = None

    def last_queen_event_at(self, last_active_at: float | None) -> float | None:
        if self.worker_at is not None and self.worker_at == last_active_at:
            return self.queen_at
        return last_active_at

    def to_dict(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> ActivityState:
        return cls(**value)


_FIELDS = ActivityState._fields
_WORKER_COUNT = _FIELDS.index("worker_count")  # the worker fields are the last three
assert _FIELDS[_WORKER_COUNT:] == ("worker_count", "queen_at", "worker_at")
_make = ActivityState._make


def _with(state: ActivityState, changes: dict[str, Any]) -> ActivityState:
    """`state._replace(**changes)` without its keyword packing (a rebuild calls this for
    most events); no changes: the state itself (a tuple, equal either way)."""
    if not changes:
        return state
    return _make([changes.get(name, value) for name, value in zip(_FIELDS, state, strict=True)])


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def fold_worker(
    state: ActivityState, event_type: str, ts: float, last_active_at: float | None = None
) -> ActivityState:
    """`fold_activity` for an event of a worker stream (not a reset type): the worker
    count and times. Its own function so a fold that already knows the stream is a
    worker's (the session fold of a run) does not ask again."""
    count = state.worker_count
    if event_type == "execution_started":
        count += 1
    elif event_type in ("execution_completed", "execution_failed"):
        count = max(0, count - 1)
    queen_at = state.last_queen_event_at(last_active_at)
    return _make((*state[:_WORKER_COUNT], count, queen_at, ts))


def fold_activity(
    state: ActivityState,
    event_type: str,
    body: dict[str, Any],
    version: int,
    ts: float,
    last_active_at: float | None = None,
) -> ActivityState:
    """(state, event) -> state. `body` is the stored envelope, `ts` its time and
    `last_active_at` the session's newest event time before it."""
    if event_type in RESET_TYPES:
        return ActivityState()
    if is_worker(body):
        return fold_worker(state, event_type, ts, last_active_at)
    changes: dict[str, Any] = {}
    if event_type not in ACTIVITY_TYPES:
        return state
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    if event_type == "loop_state_changed":
        activity = data.get("activity")
        changes.update(
            activity=activity if activity in ACTIVITIES else None,
            park_reason=_str(data.get("park_reason")),
            interrupt_cause=_str(data.get("interrupt_cause")),
            questions=data.get("questions"),
        )
    elif event_type == "execution_started":
        changes["current_execution_id"] = _str(body.get("execution_id")) or _str(
            data.get("execution_id")
        )
    elif event_type in ("execution_completed", "execution_failed"):
        changes["current_execution_id"] = None
    elif event_type == "tool_call_started":
        tool_id = _str(data.get("tool_use_id"))
        if tool_id is not None:
            call = {
                "id": tool_id,
                "name": _str(data.get("tool_name")) or "",
                "started_at": body.get("timestamp"),
                "execution_id": _str(body.get("execution_id")),
                "seq": version,
            }
            changes["tools"] = {**state.tools, tool_id: call}
    elif event_type == "tool_call_completed":
        tool_id = _str(data.get("tool_use_id"))
        if tool_id is not None and tool_id in state.tools:
            changes["tools"] = {k: v for k, v in state.tools.items() if k != tool_id}
    elif event_type == "client_input_requested":
        changes.update(pending_input=data, pending_input_seq=version)
    elif event_type == "client_input_received":
        changes.update(pending_input=None, pending_input_seq=None)
    return _with(state, changes)


def _iso(epoch: float | None) -> str | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat() if epoch is not None else None


def snapshot_view(
    state: ActivityState,
    snapshot_seq: int,
    now: float,
    last_event_at: float | None = None,
    last_queen: float | None = None,
) -> dict[str, Any]:
    """hive's `/snapshot` body (EB:2092-2230), with the 300 s stale rule applied at `now`."""
    activity = state.activity
    cause = state.interrupt_cause
    tools = list(state.tools.values())
    if activity == "executing" and last_queen is not None and now - last_queen > STALE_SECONDS:
        activity, cause, tools = "interrupted", "stale", []
    executing = activity == "executing"
    awaiting = activity == "awaiting_user"
    interrupted = activity == "interrupted"
    if not executing:
        tools = []
    if interrupted:
        busy: str | None = "interrupted"
    elif awaiting:
        busy = "awaiting_input"
    elif executing:
        busy = "tool" if tools else "llm"
    else:
        busy = None
    questions = None
    if awaiting:
        questions = state.questions or state.pending_input
    return {
        "snapshot_seq": snapshot_seq,
        "activity": activity,
        "is_executing": executing,
        "awaiting_input": awaiting,
        "interrupted": interrupted,
        "interrupt_cause": cause if interrupted else None,
        "current_execution_id": state.current_execution_id,
        "current_tool_calls": tools,
        "queen_busy_reason": busy,
        "park_reason": state.park_reason if (awaiting or interrupted) else None,
        "pending_questions": questions,
        "last_event_seq": state.pending_input_seq,
        "last_event_at": _iso(last_event_at),
        "last_queen_event_at": _iso(last_queen),
    }
