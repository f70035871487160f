"""The shape of a check that rides along the audit's single pass over the log.

Its own module so the audit driver and the checks it runs (projections, chain)
import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .audit_checks import EventRow, Report
from .audit_source import LogSource


class ExtraCheck(Protocol):
    """A check that sees every event and reports at the end (projections, trigger fires)."""

    async def start(self, source: LogSource) -> None: ...
    def event(self, row: EventRow) -> None: ...
    def rows(self, rows: Sequence[EventRow], order: int) -> None:
        """`event` for each row of a chunk; a fault of row i is added after
        `report.at(i, order)` (the audit then orders them as a row-by-row pass would)."""
        ...

    async def finish(self, source: LogSource, report: Report) -> None: ...
