"""The catalogue of every session (live and cold), folded from the global log.

Each session's value is produced by the pure `fold_session`; the catalogue maps
session ids to those values and remembers deleted ids. `fold_all(events)` builds
it from scratch (what `hivelog replay --rebuild` and the property tests compare
with); the service applies events one at a time and checkpoints the encoded
state together with the position it has folded up to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventstore import RecordedEvent
from projections.envelope import decode, event_time, parse_iso, payload
from projections.ids import is_session_stream
from projections.session import SessionEvent, SessionState, fold_session, fold_session_run

CHECKPOINT_NAME = "sessions-catalogue"
STATE_FORMAT = 2  # 2: SessionState gained `activity` (projections/activity.py)
SESSIONS_STREAM = "$sessions"  # session_deleted / session_erased (the session stream is gone)


@dataclass(slots=True)
class CatalogueState:
    """Every known session in creation order, deleted ids, and the position folded up to."""

    sessions: dict[str, SessionState] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)  # id -> deletion time
    unerased: list[str] = field(default_factory=list)  # deleted, erase not yet confirmed
    position: int = 0

    def live_ids(self) -> list[str]:
        return [sid for sid, s in self.sessions.items() if s.live]


def apply(catalogue: CatalogueState, event: RecordedEvent) -> CatalogueState:
    """Fold one event of the global log into the catalogue (updated in place, returned)."""
    catalogue.position = max(catalogue.position, event.position)
    if event.stream_id == SESSIONS_STREAM:
        _apply_system(catalogue, event)
        return catalogue
    if not is_session_stream(event.stream_id):
        return catalogue
    sid = event.stream_id
    if sid in catalogue.deleted:
        return catalogue  # raced past the deletion marker; erased with the stream anyway
    body = decode(event)
    previous = catalogue.sessions.get(sid) or SessionState(session_id=sid)
    catalogue.sessions[sid] = fold_session(
        previous, event.type, body, event.version, event_time(body, event)
    )
    return catalogue


def apply_run(catalogue: CatalogueState, events: Sequence[RecordedEvent]) -> CatalogueState:
    """`apply` for consecutive events in position order (one append's): the same
    catalogue as applying them one by one, with a run of one session's events folded
    by `fold_session_run` (the state copied once for the run, not once per event)."""
    sid = events[0].stream_id if events else SESSIONS_STREAM
    if (
        len(events) < 2
        or sid == SESSIONS_STREAM
        or not is_session_stream(sid)
        or sid in catalogue.deleted
        or [event.stream_id for event in events].count(sid) != len(events)
    ):
        for event in events:
            apply(catalogue, event)
        return catalogue
    run = [_session_event(event) for event in events]
    previous = catalogue.sessions.get(sid) or SessionState(session_id=sid)
    catalogue.sessions[sid] = fold_session_run(previous, run)
    catalogue.position = max(catalogue.position, max([event.position for event in events]))
    return catalogue


def _session_event(event: RecordedEvent) -> SessionEvent:
    """(type, envelope, version, time) of a session event: `decode` and `event_time`
    inline (a rebuild calls this once per event)."""
    try:
        body = _loads(event.data_json)
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    ts = parse_iso(body.get("timestamp"))
    return (
        event.type,
        body,
        event.version,
        ts if ts is not None else event.recorded_at_us / 1_000_000,
    )


_loads = orjson.loads


def _apply_system(catalogue: CatalogueState, event: RecordedEvent) -> None:
    body = decode(event)
    sid = payload(body).get("session_id")
    if not isinstance(sid, str):
        return
    if event.type == "session_deleted":
        catalogue.sessions.pop(sid, None)
        catalogue.deleted[sid] = event_time(body, event)
        if sid not in catalogue.unerased:
            catalogue.unerased.append(sid)
    elif event.type == "session_erased" and sid in catalogue.unerased:
        catalogue.unerased.remove(sid)


def fold_all(events: Iterable[RecordedEvent]) -> CatalogueState:
    """The catalogue from scratch: the reference every checkpointed state must equal."""
    catalogue = CatalogueState()
    for event in events:
        apply(catalogue, event)
    return catalogue


def encode(catalogue: CatalogueState) -> bytes:
    """Checkpoint bytes: JSON `{format, position, sessions, deleted, unerased}`."""
    return orjson.dumps(to_dict(catalogue))


def to_dict(catalogue: CatalogueState) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "position": catalogue.position,
        "sessions": [s.to_dict() for s in catalogue.sessions.values()],
        "deleted": catalogue.deleted,
        "unerased": catalogue.unerased,
    }


def decode_state(raw: bytes) -> CatalogueState | None:
    """A checkpoint back to state; None if it is from another format (rebuild instead)."""
    try:
        value = orjson.loads(raw)
        if value.get("format") != STATE_FORMAT:
            return None
        sessions = (SessionState.from_dict(s) for s in value["sessions"])
        return CatalogueState(
            sessions={s.session_id: s for s in sessions},
            deleted=dict(value["deleted"]),
            unerased=list(value["unerased"]),
            position=int(value["position"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
