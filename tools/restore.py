"""`hivelog restore SRC --db URL`: load a backup into an empty store, then prove it.

Refuses a target that already holds events, streams or checkpoints unless
`--force` (which empties it in the load's own transaction, so a load that fails
leaves the old log as it was). Before the target is touched the backup is proved
against itself: every file against the manifest's SHA-256, every event's content
against its digest, the chain recomputed over events and erased links. After
loading, the target is read back in one snapshot and checked against the manifest
(head position, chain head, event, stream and erased-link counts) and audited
in full (the chain is recomputed from the restored bytes). Exit 0 when all agree,
1 when anything differs, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from eventstore import InvalidEvent
from eventstore.bulk import LogTail, Row, open_loader

from .audit import audit
from .audit_source import open_source
from .config import db_url
from .console import EXIT_OK, EXIT_PROBLEMS, write_json
from .keep_format import (
    Manifest,
    check_files,
    checkpoint_from_line,
    event_files,
    event_from_line,
    link_from_line,
    prove_events,
    read_lines,
    stream_from_line,
)
from .logio import UsageError, run_tool

BATCH = 5000


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    result = await restore(Path(args.src), db_url(args.db), force=args.force)
    return report(result, args.json)


def report(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        write_json(result)
    else:
        for problem in result["problems"]:
            sys.stdout.write(f"  - {problem}\n")
        verdict = "verified" if result["ok"] else "DIFFERS FROM THE MANIFEST"
        sys.stdout.write(
            f"{verdict}: {result['events']} events, head position {result['head_position']}, "
            f"chain head {result['chain_head']['position']} {result['chain_head']['hash']}\n"
        )
    return EXIT_OK if result["ok"] else EXIT_PROBLEMS


async def restore(src: Path, url: str, *, force: bool) -> dict[str, Any]:
    """Load the backup at `src` into `url` and verify it; returns the verification."""
    manifest = Manifest.load(src)
    damaged = check_files(src, manifest) or prove_events(src, manifest)
    if damaged:
        raise UsageError(f"{src} is damaged, nothing restored: {'; '.join(damaged)}")
    streams = [stream_from_line(x) for x in read_lines(src, "streams.jsonl.gz")]
    try:
        loader = await open_loader(url)
    except InvalidEvent as exc:  # a bad URL; a refused file (StoreRefused) exits 2 too
        raise UsageError(str(exc)) from None
    try:
        wipe = not await loader.is_empty()
        if wipe and not force:
            raise UsageError(f"{url} already holds a log; restore needs an empty one (--force)")
        head = manifest.chain_head
        await loader.load(
            _event_batches(src, manifest),
            [link_from_line(x) for x in read_lines(src, "erased_links.jsonl.gz")],
            [tuple(s) for s in streams],
            [checkpoint_from_line(x) for x in read_lines(src, "checkpoints.jsonl.gz")],
            LogTail(
                manifest.head_position,
                int(head["position"]),
                bytes.fromhex(head["hash"]) if head["position"] else None,
            ),
            wipe=wipe,  # in the load's transaction: a load that fails leaves the old log
        )
    except _integrity_errors() as exc:  # rolled back: the target is as it was
        raise UsageError(f"{src} does not load, nothing restored: {exc}") from None
    finally:
        await loader.close()
    return await verify(url, manifest)


def _integrity_errors() -> tuple[type[Exception], ...]:
    """A backup that proves sound but breaks a constraint (an event id twice)."""
    try:
        import asyncpg
    except ImportError:  # a build without the PostgreSQL backend
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


async def _event_batches(src: Path, manifest: Manifest) -> AsyncIterator[list[Row]]:
    for name in event_files(manifest):
        batch: list[Row] = []
        for line in read_lines(src, name):
            batch.append(tuple(event_from_line(line)))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


async def verify(url: str, manifest: Manifest) -> dict[str, Any]:
    """The target read back in one snapshot, compared with the manifest, then audited."""
    source = await open_source(url)
    try:
        found = {
            "head_position": await source.head(),
            "events": await source.event_count(),
            "erased_links": len(await source.erased_links(after=0)),
        }
        streams = await source.streams()
        found["streams"] = len(streams)
        found["deleted_streams"] = sum(1 for s in streams if s.deleted)
        position, chain = await source.chain_head()
        chain_head = {"position": position, "hash": chain.hex()}
        audit_report = await audit(source)
    finally:
        await source.close()
    problems = [
        f"{key}: manifest says {getattr(manifest, key)}, the restored log has {value}"
        for key, value in found.items()
        if getattr(manifest, key) != value
    ]
    if chain_head != manifest.chain_head:
        problems.append(f"chain head: manifest says {manifest.chain_head}, restored {chain_head}")
    if audit_report.chain_head not in (None, manifest.chain_head) and manifest.events:
        problems.append(f"the recomputed chain ends at {audit_report.chain_head}")
    for fault in audit_report.faults:
        if fault.check not in ("projections",):  # checkpoints are restored as they were
            problems.append(f"audit {fault.check}: position {fault.position}: {fault.message}")
    return {
        "ok": not problems,
        "problems": problems,
        "chain_head": chain_head,
        "manifest_chain_head": manifest.chain_head,
        **found,
    }
