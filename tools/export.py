"""`hivelog export`: the log as JSONL (our full envelope) or as hive's on-disk layout.

`--format jsonl` (default) writes one event per line, in global order, with its
position, stream, version, id, type, commit time, metadata and the stored payload
bytes untouched; `-o PATH` or stdout. `--format hive` writes
`PATH/agents/queens/{queen_id}/sessions/{id}/{events.jsonl,meta.json}` under the
HIVE_HOME given with `-o`, which hive reads as it reads its own sessions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from eventstore import EventStore, RecordedEvent

from .console import EXIT_OK, EXIT_PROBLEMS, error, progress, write_json
from .logio import (
    UsageError,
    connect,
    event_jsonl,
    log_pages,
    resolve_url,
    run_tool,
    stream_pages,
)


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    if args.format == "hive" and not args.output:
        raise UsageError("--format hive needs -o HIVE_HOME")
    if args.json and args.format == "jsonl" and not args.output:
        raise UsageError("--json with --format jsonl needs -o PATH (stdout carries the events)")
    if args.output:
        check_output(Path(args.output), folder=args.format == "hive")
    store = await connect(resolve_url(args.db, must_exist=True))
    try:
        if args.session is not None:
            info = await store.stream_info(args.session)
            if info is None or info.deleted:
                error(f"no session {args.session!r} in the log")
                return EXIT_PROBLEMS
        if args.format == "hive":
            from .export_hive import export_hive

            summary = await export_hive(
                store, Path(args.output), args.session, force=args.force, layout=args.layout
            )
        else:
            summary = await _export_jsonl(store, args.session, args.output)
    finally:
        await store.close()
    if args.json:
        write_json(summary)
    else:
        print(_describe(summary), file=sys.stderr)
    return EXIT_OK


def check_output(path: Path, *, folder: bool) -> None:
    """Refuse an -o the export cannot write, before reading the log (it was a
    traceback after the whole export, with the `.partial` file left behind)."""
    if folder:
        if path.exists() and not path.is_dir():
            raise UsageError(f"-o {path}: not a folder (--format hive writes a HIVE_HOME)")
        return
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; give a file path")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: no folder {path.parent}")


def _describe(summary: dict[str, object]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in summary.items())


async def _export_jsonl(
    store: EventStore, session: str | None, output: str | None
) -> dict[str, object]:
    head = await store.head_position()
    if output is None:
        count = await _write_events(store, session, head, sys.stdout.buffer)
    else:
        # Write beside the target and rename: a crash never leaves half an export.
        target = Path(output)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                count = await _write_events(store, session, head, out)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)  # a failed export leaves nothing half-written
    return {"format": "jsonl", "events": count, "head_position": head, "output": output or "-"}


async def _write_events(store: EventStore, session: str | None, head: int, out: BinaryIO) -> int:
    count = 0
    done = 0
    with progress("export", None if session else head) as advance:
        async for page in _pages(store, session, head):
            out.write(b"".join(map(event_jsonl, page)))
            count += len(page)
            advance(len(page) if session else page[-1].position - done)
            done = page[-1].position
    out.flush()
    return count


def _pages(store: EventStore, session: str | None, head: int) -> AsyncIterator[list[RecordedEvent]]:
    """Everything up to the head as of the start: a consistent cut of a live log."""
    if session is not None:
        return stream_pages(store, session, before_position=head + 1)
    return _upto(log_pages(store), head)


async def _upto(
    pages: AsyncIterator[list[RecordedEvent]], head: int
) -> AsyncIterator[list[RecordedEvent]]:
    async for page in pages:
        kept = [e for e in page if e.position <= head]
        if kept:
            yield kept
        if len(kept) < len(page):
            return
