"""Audit checks above the log: the checkpoint equals a fold from scratch; no fire twice.

Both see every event of the audit's single pass. The projection check folds the
events up to the checkpoint's position with the service's own pure fold
(`projections.catalogue.apply`) and compares the result with the stored bytes.
A timer fire is identified by (session, trigger id, `scheduled_at`): the same slot
recorded twice means two nodes (or a crash and a retry) both fired it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import orjson

from eventstore import RecordedEvent
from projections import catalogue as cat
from projections.ids import is_session_stream

from .audit_checks import EventRow, Fault, Report, as_row
from .audit_extra import ExtraCheck
from .audit_source import LogSource
from .projection_compare import differences


def projection_checks(report: Report, *, fork: bool = False) -> list[ExtraCheck]:
    """The checks above the log; `fork`: the catalogue fold may run in a second process
    (tools/audit_fold.py), for a big log from the command line."""
    if fork:
        from .audit_fold import ForkedCatalogueCheck

        return [ForkedCatalogueCheck(report), TriggerFireCheck(report)]
    return [CatalogueCheck(report), TriggerFireCheck(report)]


def recorded(row: Sequence[Any]) -> RecordedEvent:
    """An audit row (EventRow, or a plain tuple in its column order) as the RecordedEvent
    the folds take."""
    position, stream_id, version, event_id, type_, data, meta, recorded_at = row[:8]
    raw = data.encode() if isinstance(data, str) else bytes(data)
    extra = meta.encode() if isinstance(meta, str) else meta
    return RecordedEvent(stream_id, version, position, event_id, type_, raw, extra, recorded_at)


@functools.lru_cache(maxsize=1 << 16)
def catalogue_folds(stream_id: str) -> bool:
    """Whether the catalogue folds this stream's events (remembered per stream id: the
    audit asks once per row)."""
    return stream_id == cat.SESSIONS_STREAM or is_session_stream(stream_id)


class CatalogueCheck:
    """The sessions catalogue checkpoint equals a fold from position 0 up to its position."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.state = cat.CatalogueState()
        self.stop_at = -1  # no checkpoint: nothing to compare, no folding needed
        self.stored: bytes | None = None
        self._readable: bool | None = None

    async def start(self, source: LogSource) -> None:
        checkpoint = await source.checkpoint_state(cat.CHECKPOINT_NAME)
        if checkpoint is not None:
            self.stop_at, self.stored = checkpoint
            self._readable = None

    def readable(self) -> bool:
        """Whether the stored state decodes (asked once: decoding 1k sessions costs)."""
        if self._readable is None:
            self._readable = self.stored is not None and cat.decode_state(self.stored) is not None
        return self._readable

    def event(self, row: EventRow) -> None:
        if row.position <= self.stop_at:
            cat.apply(self.state, recorded(row))

    def rows(self, rows: Sequence[EventRow], order: int = 2) -> None:
        """No faults until `finish`. Rows of other system streams only move the fold's
        position, which `finish` sets to the checkpoint's anyway: they are not folded."""
        stop_at, state = self.stop_at, self.state
        for row in rows:
            if row[0] > stop_at:
                return
            if catalogue_folds(row[1]):
                cat.apply(state, recorded(row))

    async def finish(self, source: LogSource, report: Report) -> None:
        if self.stored is None:
            report.skipped["projections"] = f"no checkpoint {cat.CHECKPOINT_NAME!r} saved yet"
            return
        name = cat.CHECKPOINT_NAME
        if not self.readable():
            report.add(Fault("projections", f"checkpoint {name!r} is unreadable or another format"))
            return
        rebuilt, sessions = self.rebuilt()
        if rebuilt != self.stored:  # the same bytes: the same JSON, nothing to compare
            stored: dict[str, Any] = orjson.loads(self.stored)
            if stored.get("position") != self.stop_at:
                report.add(
                    Fault(
                        "projections",
                        f"checkpoint {name!r} row says position {self.stop_at}, "
                        f"its state says {stored.get('position')}",
                    )
                )
            for difference in differences(stored, orjson.loads(rebuilt)):
                report.add(Fault("projections", f"checkpoint {name!r}: {difference}"))
        report.stats["projection_position"] = self.stop_at
        report.stats["projection_sessions"] = sessions

    def rebuilt(self) -> tuple[bytes, int]:
        """The fold from scratch in the checkpoint's encoding, and how many sessions it
        has (bytes, not JSON: a state stored by the same fold is the same bytes, and the
        fold's child hands them over without pickling ~1 MB of objects)."""
        self.state.position = self.stop_at
        return cat.encode(self.state), len(self.state.sessions)


class TriggerFireCheck:
    """Each (session, trigger, scheduled instant) is fired at most once."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.fires: dict[tuple[str, str, int], int] = {}
        self.count = 0

    async def start(self, source: LogSource) -> None:
        self.fires, self.count = {}, 0  # (a pass done again starts over)

    def rows(self, rows: Sequence[EventRow], order: int = 3) -> None:
        report = self.report
        for index, row in enumerate(rows):
            if row[4] == "trigger_fired":
                report.at(index, order)
                self.event(as_row(row))

    def event(self, row: EventRow) -> None:
        if row.type != "trigger_fired":
            return
        self.count += 1
        try:
            body = orjson.loads(row.data)
        except orjson.JSONDecodeError:
            return  # reported by the payload check
        inner = body.get("data") if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            return
        trigger_id, slot = inner.get("trigger_id"), inner.get("scheduled_at")
        if not isinstance(trigger_id, str) or not isinstance(slot, int) or isinstance(slot, bool):
            return  # manual fires have no scheduled instant
        key = (row.stream_id, trigger_id, slot)
        first = self.fires.setdefault(key, row.position)
        if first != row.position:
            when = dt.datetime.fromtimestamp(slot / 1000, dt.UTC).isoformat()
            self.report.add(
                Fault(
                    "trigger_fires",
                    f"trigger {trigger_id!r} fired twice for the slot scheduled at {when} "
                    f"(positions {first} and {row.position})",
                    row.stream_id,
                    row.position,
                )
            )

    async def finish(self, source: LogSource, report: Report) -> None:
        report.stats["trigger_fires"] = self.count
