"""`hivelog audit`: prove the log is sound, or list every fault (exit 1).

One pass over the events in position order feeds the log-level checker, the hash
chain check and the projection checks; the stream heads, log head, checkpoints and
an id-uniqueness query complete it. A SQLite file is first run through
`PRAGMA quick_check`, and a read that hits a damaged page becomes a `storage`
fault, never a traceback. Checks that cannot run are reported as skipped, never
as passed. `--from POSITION` verifies the chain from that position only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .audit_chain import ChainCheck
from .audit_checks import CHECKS, EventRow, Fault, LogChecker, Report, as_row
from .audit_extra import ExtraCheck
from .audit_source import LogSource, open_source
from .console import EXIT_OK, EXIT_PROBLEMS, progress, write_json
from .logio import UsageError, resolve_url, run_tool

PARTIAL = "not run with --from (it needs the whole log)"


def run(args: argparse.Namespace) -> int:
    # The pass folds a share of the sessions (tools/audit_fold.py) and keeps what it
    # folds: the cyclic collector would only rescan that growing state, as in the fold's
    # child, so it is off for the command (and back on after, for a caller in-process).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return run_tool(_main(args))
    finally:
        if enabled:
            gc.enable()


async def _main(args: argparse.Namespace) -> int:
    if args.from_position is not None and args.from_position < 1:
        raise UsageError("--from takes a position >= 1")
    source = await open_source(resolve_url(args.db, must_exist=True))
    try:
        archives = [Path(a) for a in args.archive or ()]
        report = await audit(
            source, from_position=args.from_position, archives=archives, fork_fold=True
        )
    finally:
        await source.close()
    if args.json:
        write_json(report.to_dict())
    else:
        sys.stdout.write(render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


async def audit(
    source: LogSource,
    from_position: int | None = None,
    *,
    storage: bool = True,
    archives: Sequence[Path] = (),
    fork_fold: bool = False,
) -> Report:
    """The full audit (or the chain from `from_position`); damage is reported, not raised.

    `storage=False` skips `PRAGMA quick_check` (for a caller that has just run it).
    `fork_fold`: on a big log the catalogue fold runs in a second process beside the
    pass (tools/audit_fold.py; the command line does this, the same report either way).
    """
    apart = getattr(source, "storage_problems_apart", None) if storage else None
    if apart is not None:  # quick_check in a thread of its own while the pass runs
        checking = asyncio.ensure_future(asyncio.to_thread(_problems_apart, apart))
        try:
            rest = await _checks(source, Report(), from_position, archives, fork_fold)
        finally:
            problems = await checking
        return _storage_first(problems, rest)
    report = Report()
    try:
        problems = await source.storage_problems() if storage else []
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    for problem in problems:
        report.add(Fault("storage", f"PRAGMA quick_check: {problem}"))
    return await _checks(source, report, from_position, archives, fork_fold)


def _problems_apart(check: Callable[[], list[str]]) -> list[str]:
    try:
        return check()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


async def _checks(
    source: LogSource,
    report: Report,
    from_position: int | None,
    archives: Sequence[Path],
    fork_fold: bool,
) -> Report:
    try:
        if from_position is None:
            await _full(source, report, archives, fork_fold=fork_fold)
        else:
            await _chain_only(source, report, from_position)
    except sqlite3.DatabaseError as exc:
        report.add(Fault("storage", f"reading the log failed: {exc}"))
    return report


def _storage_first(problems: list[str], rest: Report) -> Report:
    """The report as if quick_check had run first: its faults, then the pass's (each
    check still listing its first MAX_LISTED, counting all)."""
    report = Report()
    for problem in problems:
        report.add(Fault("storage", f"PRAGMA quick_check: {problem}"))
    counted = dict(report.counts)
    for fault in rest.faults:
        report.add(fault)
    report.counts = {c: counted.get(c, 0) + n for c, n in rest.counts.items()}
    report.skipped, report.stats, report.chain_head = rest.skipped, rest.stats, rest.chain_head
    return report


async def _full(
    source: LogSource, report: Report, archives: Sequence[Path] = (), *, fork_fold: bool = False
) -> None:
    cuts = await source.archive_cuts()
    folds = extra_checks(report, fork=fork_fold and not cuts)
    before = _saved(report)
    try:
        if await _pass(source, report, LogChecker(report, cuts), folds, archives, cuts):
            # the fold's child found data to fault (or could not be trusted): the pass
            # again with every check here, so the faults are worded and ordered as ever
            _restore(report, before)
            await _pass(source, report, LogChecker(report, cuts), folds, archives, cuts)
    finally:
        for fold in folds:
            close = getattr(fold, "close", None)
            if close is not None:
                close()


Saved = tuple[list[Fault], dict[str, int], dict[str, str], dict[str, int], dict[str, object] | None]


def _saved(report: Report) -> Saved:
    """What the report holds before a pass (a pass done again starts from there)."""
    return (
        list(report.faults),
        dict(report.counts),
        dict(report.skipped),
        dict(report.stats),
        report.chain_head,
    )


def _restore(report: Report, saved: Saved) -> None:
    faults, counts, skipped, stats, head = saved
    report.faults, report.counts, report.skipped, report.stats = (
        list(faults),
        dict(counts),
        dict(skipped),
        dict(stats),
    )
    report.chain_head = head


async def _pass(
    source: LogSource,
    report: Report,
    checker: LogChecker,
    folds: list[ExtraCheck],
    archives: Sequence[Path],
    cuts: dict[str, int],
) -> bool:
    """One pass over the log feeding every check; True if a check asks for it again
    with every check in this process (`recheck`: see tools/audit_fold.py)."""
    archived = archived_rows(archives, cuts) if cuts else []
    if cuts and not archived and folds:  # folds from scratch need the archived events
        why = f"{len(cuts)} streams are archived: give the --archive DIRs that hold them"
        report.skipped.update(projections=why, trigger_fires=why)
        folds = []
    extras: list[ExtraCheck] = [ChainCheck(report), *folds]
    head = await source.head()
    for extra in extras:
        await extra.start(source)
    checked_to = [getattr(fold, "data_checked_to", -1) for fold in folds]
    checker.data_checked_to = max(checked_to, default=-1)
    pending = iter(archived)
    nxt = next(pending, None)
    with progress("audit", head) as advance:
        done = 0
        async for rows in source.events(plain=True):
            if nxt is None:  # no archived events to merge in: each check takes the chunk
                report.stage()
                try:
                    checker.rows(rows, 0)
                    for order, extra in enumerate(extras, start=1):
                        extra.rows(rows, order)
                finally:
                    report.flush()
                advance(rows[-1][0] - done)
                done = rows[-1][0]
                continue
            for row in map(as_row, rows):
                while nxt is not None and nxt.position < row.position:
                    for fold in folds:
                        fold.event(nxt)
                    nxt = next(pending, None)
                checker.event(row)
                for extra in extras:
                    extra.event(row)
            advance(rows[-1][0] - done)
            done = rows[-1][0]
    while nxt is not None:
        for fold in folds:
            fold.event(nxt)
        nxt = next(pending, None)
    checker.finish(
        await source.streams(), head, await source.checkpoints(), await source.duplicate_ids()
    )
    for extra in extras:
        await extra.finish(source, report)
    return any(getattr(extra, "recheck", False) for extra in extras)


async def _chain_only(source: LogSource, report: Report, from_position: int) -> None:
    chain = ChainCheck(report, start_after=from_position - 1)
    await chain.start(source)
    async for rows in source.events(after=from_position - 1, plain=True):
        chain.rows(rows)
    await chain.finish(source, report)
    for check in CHECKS:
        if check not in ("chain", "storage"):
            report.skipped.setdefault(check, PARTIAL)


def archived_rows(archives: Sequence[Path], cuts: dict[str, int]) -> list[EventRow]:
    """The events `hivelog archive` moved out that are still cut, in position order;
    [] unless the folders cover every cut exactly."""
    from .archive import read_archived, uncovered

    rows = read_archived(archives, cuts)
    if uncovered(cuts, (row.stream_id for row in rows)):
        return []  # the caller reports the projection checks as skipped
    return rows


def extra_checks(report: Report, *, fork: bool = False) -> list[ExtraCheck]:
    """The projection checks, when this build has the projections."""
    try:
        from .audit_projections import projection_checks
    except ImportError as exc:
        why = f"not in this build ({exc.name})"
        report.skipped.update(projections=why, trigger_fires=why)
        return []
    return projection_checks(report, fork=fork)


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
    if report.chain_head is not None:
        head = report.chain_head
        lines.append(f"chain head         position {head['position']} hash {head['hash']}")
    stats = ", ".join(f"{k} {v}" for k, v in report.stats.items())
    verdict = "log is sound" if report.ok else "FAULTS FOUND"
    lines.append(f"{verdict} ({stats})")
    return "\n".join(lines) + "\n"
