"""`hivelog audit`: prove the log is sound, or list every fault (exit 1).

One pass over the events in position order feeds the log-level checker and the
projection checks; the stream heads, log head, checkpoints and an id-uniqueness
query complete it. Checks that cannot run in this build are reported as skipped,
never as passed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Protocol

from .audit_checks import CHECKS, EventRow, LogChecker, Report
from .audit_source import LogSource, open_source
from .console import EXIT_OK, EXIT_PROBLEMS, progress, write_json
from .logio import resolve_url, run_tool


class ExtraCheck(Protocol):
    """A check that sees every event and reports at the end (projections, trigger fires)."""

    async def start(self, source: LogSource) -> None: ...
    def event(self, row: EventRow) -> None: ...
    async def finish(self, source: LogSource, report: Report) -> None: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    source = await open_source(resolve_url(args.db, must_exist=True))
    try:
        report = await audit(source)
    finally:
        await source.close()
    if args.json:
        write_json(report.to_dict())
    else:
        sys.stdout.write(render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


async def audit(source: LogSource) -> Report:
    report = Report()
    checker = LogChecker(report)
    extras = extra_checks(report)
    head = await source.head()
    for extra in extras:
        await extra.start(source)
    with progress("audit", head) as advance:
        done = 0
        async for rows in source.events():
            for row in rows:
                checker.event(row)
                for extra in extras:
                    extra.event(row)
            advance(rows[-1].position - done)
            done = rows[-1].position
    checker.finish(
        await source.streams(), head, await source.checkpoints(), await source.duplicate_ids()
    )
    for extra in extras:
        await extra.finish(source, report)
    return report


def extra_checks(report: Report) -> list[ExtraCheck]:
    """The projection checks, when this build has the projections."""
    try:
        from .audit_projections import projection_checks
    except ImportError as exc:
        why = f"not in this build ({exc.name})"
        report.skipped.update(projections=why, trigger_fires=why)
        return []
    return projection_checks(report)


def render(report: Report) -> str:
    lines: list[str] = []
    for check in CHECKS:
        count = report.counts.get(check, 0)
        if check in report.skipped:
            status = f"skipped: {report.skipped[check]}"
        else:
            status = "ok" if count == 0 else f"{count} fault{'s' if count != 1 else ''}"
        lines.append(f"{check:<18} {status}")
        for fault in report.faults:
            if fault.check == check:
                where = []
                if fault.stream_id is not None:
                    where.append(f"stream {fault.stream_id!r}")
                if fault.position is not None:
                    where.append(f"position {fault.position}")
                prefix = f"[{', '.join(where)}] " if where else ""
                lines.append(f"  - {prefix}{fault.message}")
    stats = ", ".join(f"{k} {v}" for k, v in report.stats.items())
    verdict = "log is sound" if report.ok else "FAULTS FOUND"
    lines.append(f"{verdict} ({stats})")
    return "\n".join(lines) + "\n"
