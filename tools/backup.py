"""`hivelog backup DEST`: a consistent copy of the running log, with a manifest.

The copy is read in ONE snapshot: SQLite through a read-only connection inside one
read transaction (WAL readers never block the writer, so appends go on at full
speed; the snapshot is taken when the backup opens the file), PostgreSQL in one
REPEATABLE READ read-only transaction. It is written in the backend-neutral
format of `tools/keep_format.py`, so `hivelog restore` can load it into either
backend. Every event acknowledged before the backup began is in it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .audit_source import LogSource, open_source
from .console import EXIT_OK, write_json
from .keep_format import (
    BACKUP_FILES,
    MANIFEST,
    SEGMENT_EVENTS,
    Manifest,
    SegmentWriter,
    checkpoint_line,
    clear_unfinished,
    event_line,
    link_line,
    now_iso,
    stream_line,
)
from .logio import UsageError, resolve_url, run_tool


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    url = resolve_url(args.db, must_exist=True)
    manifest = await backup(url, Path(args.dest))
    if args.json:
        write_json(manifest.to_dict())
    else:
        sys.stdout.write(describe(manifest, args.dest))
    return EXIT_OK


def describe(manifest: Manifest, where: str) -> str:
    head = manifest.chain_head
    return (
        f"backed up {manifest.events} events in {manifest.streams} streams "
        f"({manifest.deleted_streams} deleted, {manifest.erased_links} erased links) to {where}\n"
        f"head position {manifest.head_position}, chain head {head['position']} {head['hash']}\n"
    )


def check_dest(dest: Path) -> None:
    """DEST must be new or an empty folder: a backup never mixes with other files."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not an empty folder; give a new one")


def prepare_dest(dest: Path) -> None:
    check_dest(dest)
    dest.mkdir(parents=True, exist_ok=True)


async def backup(url: str, dest: Path) -> Manifest:
    """Write the log at `url` into `dest`; returns the manifest it wrote last. A `dest`
    left by a backup stopped part-way (its files, no manifest) is written anew."""
    clear_unfinished(dest, BACKUP_FILES, MANIFEST)
    check_dest(dest)
    source = await open_source(url)  # the snapshot starts here
    try:
        unchained = await source.chain_missing()
        if unchained is not None:  # a backup must be verifiable link by link
            raise UsageError(f"not backed up: {unchained}")
        prepare_dest(dest)
        return await write_snapshot(source, dest, source_name=redact(url))
    finally:
        await source.close()


async def write_snapshot(source: LogSource, dest: Path, *, source_name: str) -> Manifest:
    files: dict[str, dict[str, object]] = {}
    writer = SegmentWriter(dest, files)
    events = 0
    segment = 0
    async for rows in source.events():
        for row in rows:
            if events % SEGMENT_EVENTS == 0:
                segment += 1
                writer.open(f"events-{segment:06d}.jsonl.gz")
            writer.write(event_line(row), row.position)
            events += 1
    writer.close()
    links = await source.erased_links(after=0)
    writer.open("erased_links.jsonl.gz")
    for link in links:
        writer.write(link_line(link), int(link[0]))
    streams = await source.streams()
    writer.open("streams.jsonl.gz")
    for stream in streams:
        writer.write(stream_line(stream))
    checkpoints = await source.checkpoints()
    writer.open("checkpoints.jsonl.gz")
    for checkpoint in checkpoints:
        saved = await source.checkpoint_state(checkpoint.name)
        if saved is not None:
            writer.write(checkpoint_line(checkpoint.name, saved[0], saved[1]))
    writer.close()
    chain_position, chain_hash = await source.chain_head()
    manifest = Manifest(
        created_at=now_iso(),
        source=source_name,
        schema_version=await source.schema_version(),
        head_position=await source.head(),
        chain_head={"position": chain_position, "hash": chain_hash.hex()},
        events=events,
        streams=len(streams),
        deleted_streams=sum(1 for s in streams if s.deleted),
        erased_links=len(links),
        checkpoints=len(checkpoints),
        files=dict(files),
    )
    manifest.write(dest)  # last: a folder without a manifest is an unfinished backup
    return manifest


def redact(url: str) -> str:
    """The URL without a password, for the manifest."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        userinfo, host = rest.split("@", 1)
        return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}"
    return url
