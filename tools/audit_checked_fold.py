"""The catalogue fold of `hivelog audit` that also checks the data it parses.

A session event's data is parsed once, for both: the fold (the service's own
`session.fold_session_run`, handed each run as the (type, envelope, version, time)
`catalogue.apply_run` would make of it) and the audit's payload check (counted here,
worded by the audit's pass should any be found). The sessions can be shared between
two folds (the audit's parent and its child, tools/audit_fold.py), each folding every
`$sessions` event and its own sessions; `merged` puts the two states together in the
order one fold would have made (each session where it was last inserted).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

import orjson

from eventstore import RecordedEvent
from projections import catalogue as cat
from projections.envelope import parse_iso
from projections.ids import is_session_stream
from projections.session import SessionEvent, SessionState, fold_session_run

from .audit_checks import envelope_moment

RUN_MAX = 1_000  # events folded as one run at most (bounds the memory)
CheckedRow = tuple[str, int, int, str, Any, int]  # stream, version, position, type, data, time


@functools.lru_cache(maxsize=1 << 16)
def share(stream_id: str) -> int:
    """Which of 100 shares a session belongs to (a fold takes the sessions below or
    from a cut; the same in both processes)."""
    return zlib.crc32(stream_id.encode()) % 100


class CheckedFold:
    """Folds the rows it is fed (position order, any chunks) of `$sessions` and of the
    session streams `takes` accepts, and counts those session events whose data is not a
    sound envelope (`unsound`)."""

    def __init__(self, takes: Callable[[str], bool] = lambda _: True) -> None:
        self.state = cat.CatalogueState()
        self.unsound = 0
        self.inserted: dict[str, int] = {}  # session -> position it was last inserted at
        self.takes = takes
        self._taken: dict[str, bool] = {}

    def feed(self, rows: Iterable[CheckedRow]) -> None:
        state, taken, inserted = self.state, self._taken, self.inserted
        for stream_id, group in groupby(rows, key=_stream_id):
            take = taken.get(stream_id)
            if take is None:
                take = taken[stream_id] = stream_id == cat.SESSIONS_STREAM or (
                    is_session_stream(stream_id) and self.takes(stream_id)
                )
            if not take:
                continue
            if stream_id == cat.SESSIONS_STREAM:
                for row in group:
                    cat.apply(state, _recorded(row))
                continue
            sessions = state.sessions
            while chunk := list(islice(group, RUN_MAX)):
                run, bad = _session_run(chunk)
                self.unsound += bad
                if len(chunk) < 2 or stream_id in state.deleted:  # as `apply_run` does
                    for row in chunk:
                        absent = stream_id not in sessions
                        cat.apply(state, _recorded(row))
                        if absent and stream_id in sessions:
                            inserted[stream_id] = row[2]
                    continue
                previous = sessions.get(stream_id)
                if previous is None:
                    previous = SessionState(session_id=stream_id)
                    inserted[stream_id] = chunk[0][2]
                sessions[stream_id] = fold_session_run(previous, run)
                state.position = max(state.position, chunk[-1][2])


def merged(a: CheckedFold, b: tuple[cat.CatalogueState, dict[str, int]]) -> cat.CatalogueState:
    """Two folds of the same rows' `$sessions` events and of disjoint sessions as one:
    each session where one fold would have last inserted it."""
    other, where = b
    at = {**a.inserted, **where}
    sessions = {**a.state.sessions, **other.sessions}
    state = cat.CatalogueState(
        sessions={sid: sessions[sid] for sid in sorted(sessions, key=at.__getitem__)},
        deleted=a.state.deleted,
        unerased=a.state.unerased,
        position=max(a.state.position, other.position),
    )
    return state


def fold_checked(rows: Iterable[CheckedRow]) -> tuple[cat.CatalogueState, int]:
    """Every session's fold and the count of unsound session events, in one go."""
    fold = CheckedFold()
    fold.feed(rows)
    return fold.state, fold.unsound


def _session_run(chunk: Sequence[CheckedRow]) -> tuple[list[SessionEvent], int]:
    """A session's rows as the fold's events (what `catalogue._session_event` makes of
    them), and how many of them are not a sound envelope."""
    loads, moment_of, bad = orjson.loads, envelope_moment, 0
    run: list[SessionEvent] = []
    for _, version, _, type_, data, recorded_at in chunk:
        try:
            body = loads(data)
        except orjson.JSONDecodeError:
            body = None
        moment = moment_of(body, type_)
        if moment is not None:  # aware, so `parse_iso` would give the same
            when: float | None = moment.timestamp()
        else:
            bad += 1
            if type(body) is not dict:
                body = {}
            when = parse_iso(body.get("timestamp"))
        run.append((type_, body, version, when if when is not None else recorded_at / 1_000_000))
    return run, bad


def _recorded(row: CheckedRow) -> RecordedEvent:
    stream_id, version, position, type_, data, recorded_at = row
    return RecordedEvent(stream_id, version, position, "", type_, data, None, recorded_at)


_stream_id = itemgetter(0)
