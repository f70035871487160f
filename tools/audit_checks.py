"""The log-level audit checks, as a pure checker fed the log in position order.

No I/O here: a source (SQLite file or PostgreSQL) feeds `LogChecker.event()` one
row at a time, then `finish()` with the stream heads, the log head and the
checkpoints. Memory is bounded by the number of streams, not events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from projections.ids import is_session_stream

# hive's envelope (contract §2.1); run_id may be absent ("present only when set").
ENVELOPE_REQUIRED = (
    "type",
    "stream_id",
    "node_id",
    "execution_id",
    "data",
    "timestamp",
    "correlation_id",
    "colony_id",
)
MAX_LISTED = 200  # faults listed per check; the rest are counted

CHECKS = (
    "storage",
    "chain",
    "stream_versions",
    "global_positions",
    "event_ids",
    "payloads",
    "stream_heads",
    "tombstones",
    "checkpoints",
    "projections",
    "trigger_fires",
)


class EventRow(NamedTuple):
    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    data: bytes | str
    metadata: bytes | str | None
    recorded_at_us: int
    digest: bytes | None  # the hash chain's columns (None: not hashed)
    chain: bytes | None


class StreamRow(NamedTuple):
    stream_id: str
    head_version: int
    head_position: int
    deleted: bool
    erased_events: int
    truncated_before: int = 0  # versions below it are in an archive (hivelog archive)


class CheckpointRow(NamedTuple):
    name: str
    position: int


@dataclass(frozen=True, slots=True)
class Fault:
    check: str
    message: str
    stream_id: str | None = None
    position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "message": self.message,
            "stream_id": self.stream_id,
            "position": self.position,
        }


@dataclass
class Report:
    """Faults per check (capped), how many there were, and what was looked at."""

    faults: list[Fault] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why it did not run
    stats: dict[str, int] = field(default_factory=dict)
    chain_head: dict[str, object] | None = None  # {"position", "hash"} of the newest link
    # While a chunk of rows is checked one check after another, faults wait here with
    # (row index, check order, arrival) and are added in the order a row-by-row pass
    # (every check on row 1, then on row 2, ...) would have added them.
    _staged: list[tuple[int, int, int, Fault]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _key: tuple[int, int] = field(default=(0, 0), init=False, repr=False, compare=False)

    def stage(self) -> None:
        self._staged = []

    def at(self, index: int, order: int) -> None:
        """Faults added from now on belong to row `index` of the chunk, check `order`."""
        self._key = index, order

    def flush(self) -> None:
        staged, self._staged = self._staged, None
        for *_, fault in sorted(staged or (), key=lambda s: s[:3]):
            self.add(fault)

    def add(self, fault: Fault) -> None:
        if self._staged is not None:
            self._staged.append((*self._key, len(self._staged), fault))
            return
        self.counts[fault.check] = self.counts.get(fault.check, 0) + 1
        if self.counts[fault.check] <= MAX_LISTED:
            self.faults.append(fault)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "fault_counts": self.counts,
            "faults": [f.to_dict() for f in self.faults],
            "skipped": self.skipped,
            "stats": self.stats,
            "chain_head": self.chain_head,
        }


@dataclass(slots=True)
class _StreamSeen:
    version: int
    position: int
    count: int


class LogChecker:
    """Feed every event row in position order, then call `finish`."""

    def __init__(self, report: Report, cuts: dict[str, int] | None = None) -> None:
        self.report = report
        self.cuts = cuts or {}  # stream -> archived before this version (hivelog archive)
        self.streams: dict[str, _StreamSeen] = {}
        self.events = 0
        self.last_position = 0
        self.gaps: list[tuple[int, int]] = []  # (first missing, last missing), capped
        self._session: dict[str, bool] = {}  # stream id -> is a session stream
        # Session events up to this position have their data checked elsewhere (the
        # fold's child parses it anyway; see tools/audit_fold.py): the common row checks
        # only its metadata. A row that takes the slow path is checked whole, as ever.
        self.data_checked_to = -1

    def event(self, row: EventRow) -> None:
        self.events += 1
        if row.position <= self.last_position:
            self._fault("global_positions", f"position {row.position} out of order", row)
        elif row.position != self.last_position + 1 and len(self.gaps) < MAX_LISTED:
            self.gaps.append((self.last_position + 1, row.position - 1))
        self.last_position = max(self.last_position, row.position)
        self._check_version(row)
        self._check_payload(row)

    def rows(self, rows: Sequence[EventRow], order: int = 0) -> None:
        """`event` for each row of a chunk; the common case (the next position, the next
        version of a stream seen before, a sound payload) in one tight loop, anything
        else through `event` itself, so every fault is found and worded as there.
        A row may be a plain tuple in EventRow's column order (see `as_row`)."""
        streams, report, loads = self.streams, self.report, orjson.loads
        session, moment_of = self._session, envelope_moment
        last = self.last_position
        elsewhere = self.data_checked_to
        passed = 0
        for index, row in enumerate(rows):
            position, stream_id, version, _, type_, data, meta, _, _, _ = row
            seen = streams.get(stream_id)
            if position == last + 1 and seen is not None and version == seen.version + 1:
                is_session = session.get(stream_id)
                if is_session is None:
                    is_session = session[stream_id] = is_session_stream(stream_id)
                if is_session and position <= elsewhere:  # its data is checked elsewhere
                    try:
                        if meta is not None:
                            loads(meta)
                    except orjson.JSONDecodeError:
                        body = _SLOW  # `event` words it
                    else:
                        passed += 1
                        last = position
                        seen.version, seen.position = version, position
                        seen.count += 1
                        continue
                else:
                    try:
                        body = loads(data)
                        if meta is not None:
                            loads(meta)
                    except orjson.JSONDecodeError:
                        body = _SLOW
                sound = body is not _SLOW
                if sound and is_session:  # else `event` words what is wrong
                    sound = moment_of(body, type_) is not None
                if sound:
                    passed += 1
                    last = position
                    seen.version, seen.position = version, position
                    seen.count += 1
                    continue
            self.events += passed
            passed = 0
            self.last_position = last
            report.at(index, order)
            self.event(as_row(row))
            last = self.last_position
        self.events += passed
        self.last_position = last

    def _check_version(self, row: EventRow) -> None:
        seen = self.streams.get(row.stream_id)
        previous = seen.version if seen else max(self.cuts.get(row.stream_id, 1) - 1, 0)
        if row.version != previous + 1:
            if row.version == previous + 2:
                missing = f"version {previous + 1} missing"
            elif row.version > previous + 2:
                missing = f"versions {previous + 1}..{row.version - 1} missing"
            else:
                missing = "repeated or out of order"
            self._fault(
                "stream_versions",
                f"version {row.version} follows version {previous} ({missing})",
                row,
            )
        if seen is None:
            self.streams[row.stream_id] = _StreamSeen(row.version, row.position, 1)
        else:
            seen.version = max(seen.version, row.version)
            seen.position = row.position
            seen.count += 1

    def _check_payload(self, row: EventRow) -> None:
        try:
            body = orjson.loads(row.data)
        except orjson.JSONDecodeError as exc:
            self._fault("payloads", f"data is not valid JSON ({exc})", row)
            return
        if row.metadata is not None:
            try:
                orjson.loads(row.metadata)
            except orjson.JSONDecodeError as exc:
                self._fault("payloads", f"metadata is not valid JSON ({exc})", row)
        if is_session_stream(row.stream_id):
            problem = envelope_problem(body, row.type)
            if problem:
                self._fault("payloads", problem, row)

    def finish(
        self,
        streams: Iterable[StreamRow],
        head: int,
        checkpoints: Sequence[CheckpointRow],
        duplicate_ids: Sequence[tuple[str, int]],
    ) -> Report:
        report = self.report
        erased = 0
        archived = sum(max(cut - 1, 0) for cut in self.cuts.values())
        heads = {s.stream_id: s for s in streams}
        for row in heads.values():
            seen = self.streams.get(row.stream_id)
            if row.deleted:
                erased += row.erased_events
                if seen is not None:
                    report.add(
                        Fault(
                            "tombstones",
                            f"deleted stream still has {seen.count} events",
                            row.stream_id,
                            seen.position,
                        )
                    )
                continue
            self._check_head(row, seen)
        for stream_id, seen in self.streams.items():
            if stream_id not in heads:
                report.add(
                    Fault(
                        "stream_heads",
                        f"{seen.count} events but no stream head row",
                        stream_id,
                        seen.position,
                    )
                )
        self._check_positions(head, erased + archived)
        for name, position in checkpoints:
            if position > head:
                report.add(
                    Fault(
                        "checkpoints",
                        f"checkpoint {name!r} at position {position} is beyond the head {head}",
                    )
                )
        for event_id, count in duplicate_ids:
            report.add(Fault("event_ids", f"event id {event_id} is stored {count} times"))
        report.stats.update(
            events=self.events,
            streams=len(heads),
            deleted_streams=sum(1 for s in heads.values() if s.deleted),
            erased_events=erased,
            archived_events=archived,
            head_position=head,
            checkpoints=len(checkpoints),
        )
        return report

    def _check_head(self, row: StreamRow, seen: _StreamSeen | None) -> None:
        if seen is None:
            if row.head_version >= self.cuts.get(row.stream_id, 0):  # all archived: fine
                self.report.add(
                    Fault(
                        "stream_heads",
                        f"head says version {row.head_version} but the stream has no events",
                        row.stream_id,
                    )
                )
            return
        if row.head_version != seen.version or row.head_position != seen.position:
            self.report.add(
                Fault(
                    "stream_heads",
                    f"head says version {row.head_version} at position {row.head_position}; "
                    f"the events end at version {seen.version}, position {seen.position}",
                    row.stream_id,
                    seen.position,
                )
            )

    def _check_positions(self, head: int, erased: int) -> None:
        report = self.report
        if self.last_position > head:
            report.add(
                Fault(
                    "global_positions",
                    f"events up to position {self.last_position} beyond the log head {head}",
                    position=self.last_position,
                )
            )
            return
        missing = head - self.events
        if missing != erased:
            gaps = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in self.gaps[:20])
            if self.last_position < head:
                gaps = f"{gaps}, {self.last_position + 1}..{head}".lstrip(", ")
            report.add(
                Fault(
                    "global_positions",
                    f"{missing} positions of 1..{head} hold no event, but deleted streams "
                    f"account for {erased} (gaps: {gaps or 'none'})",
                )
            )

    def _fault(self, check: str, message: str, row: EventRow) -> None:
        self.report.add(Fault(check, message, row.stream_id, row.position))


_SLOW = object()
_REQUIRED = frozenset(ENVELOPE_REQUIRED)
_UTC = dt.timedelta(0)
_fromiso = dt.datetime.fromisoformat


def as_row(row: Sequence[Any]) -> EventRow:
    """A row as EventRow: the SQLite source hands the checks plain tuples in its column
    order (making a named tuple of every row costs more than a check); the fast paths
    index them, and a row that takes the slow path is made an EventRow for it."""
    return row if type(row) is EventRow else EventRow._make(row)


def envelope_moment(body: Any, event_type: str) -> dt.datetime | None:
    """The envelope's time if `body` is a sound envelope of `event_type` (what
    `envelope_problem` passes), else None: the fold's child checks the rows it parses
    with this (a property test holds it to `envelope_problem`)."""
    if type(body) is not dict or not body.keys() >= _REQUIRED:
        return None
    stamp = body["timestamp"]
    if body["type"] != event_type or type(body["data"]) is not dict or type(stamp) is not str:
        return None
    try:
        moment = _fromiso(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo is dt.UTC or moment.utcoffset() == _UTC else None


def envelope_problem(body: Any, event_type: str) -> str | None:
    """Why a session event's payload is not hive's envelope, or None if it is."""
    if not isinstance(body, dict):
        return "data is not a JSON object (want hive's envelope)"
    missing = [k for k in ENVELOPE_REQUIRED if k not in body]
    if missing:
        return f"envelope lacks {', '.join(missing)}"
    if body["type"] != event_type:
        return f"envelope type {body['type']!r} differs from the event type {event_type!r}"
    if not isinstance(body["data"], dict):
        return "envelope data is not an object"
    stamp = body["timestamp"]
    if not isinstance(stamp, str):
        return "envelope timestamp is not a string"
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return f"envelope timestamp {stamp!r} is not ISO-8601"
    if moment.utcoffset() != dt.timedelta(0):
        return f"envelope timestamp {stamp!r} is not UTC"
    return None
