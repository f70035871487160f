"""`hivelog restore-archive DIR`: put archived events back into the live log.

Every file is checked against the archive's manifest first; each event is then
checked, inside the writer's transaction, against the link its removal left in
`erased_links` (header, digest and link equal, content matching its digest), so
only the very events that were archived come back, at their old positions and
versions. One transaction per stream; a stream whose events are live again (an
archive interrupted before removal, or restored already) is skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .archive import files_problems, load_manifest
from .console import EXIT_OK, write_json
from .keep_format import event_from_line, read_lines
from .logio import UsageError, connect, resolve_url, run_tool


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    result = await restore_archive(resolve_url(args.db, must_exist=True), Path(args.src))
    if args.json:
        write_json(result)
    else:
        sys.stdout.write(
            f"restored {result['events']} events of {len(result['restored'])} streams "
            f"({len(result['skipped'])} already live)\n"
        )
    return EXIT_OK


async def restore_archive(url: str, src: Path) -> dict[str, Any]:
    manifest = load_manifest(src)
    damaged = files_problems(src, manifest["files"])
    if damaged:
        raise UsageError(f"{src} is damaged, nothing restored: {'; '.join(damaged)}")
    store = await connect(url)
    try:
        result: dict[str, Any] = {"events": 0, "restored": [], "skipped": []}
        for entry in manifest["streams"]:
            stream_id = entry["stream_id"]
            info = await store.stream_info(stream_id)
            if info is not None and info.truncated_before <= entry["from_version"]:
                result["skipped"].append(stream_id)
                continue
            if info is None or info.truncated_before != entry["before_version"]:
                cut = info.truncated_before if info else None
                raise UsageError(
                    f"{stream_id}: the log is cut at version {cut}, this archive ends before "
                    f"{entry['before_version']}: restore the newer archive first"
                )
            rows = [_row(event_from_line(line)) for line in read_lines(src, entry["file"])]
            if len(rows) != entry["events"]:
                raise UsageError(
                    f"{entry['file']}: {len(rows)} events, manifest says {entry['events']}"
                )
            versions = [row[2] for row in rows]
            if versions != list(range(entry["from_version"], entry["before_version"])):
                # each row is checked against its kept link, but a row taken out (with the
                # manifest edited to match) would come back as a stream with a hole
                raise UsageError(
                    f"{entry['file']}: versions are not {entry['from_version']}.."
                    f"{entry['before_version'] - 1} without a gap, nothing restored"
                )
            await store.restore_archived(stream_id, rows)
            result["restored"].append(stream_id)
            result["events"] += len(rows)
        return result
    finally:
        await store.close()


def _row(row: Any) -> tuple[Any, ...]:
    data = row.data if isinstance(row.data, bytes) else str(row.data).encode()
    return (*row[:5], data, *row[6:])
