"""`hivelog archive`: move each session stream's oldest events to a verified archive folder.

Truncate-before (KurrentDB's `$tb`): per stream a prefix of versions goes, never
a hole. The events are written first, in the backup segment format
(`tools/keep_format.py`: one gzip JSONL file per stream, content, digest and link
exactly), and the manifest names every stream's range and each file's SHA-256.
Only then, one transaction per stream, the events leave the live log while their
links stay in `erased_links` (as after an erase), so the chain still verifies,
and the stream records its cut (`truncated_before`). Versions and positions never
change. Only events at or below the sessions catalogue checkpoint are taken: the
service folds from that checkpoint, so it never needs them again; and only events
every consumer group is done with (at or below each group's checkpoint and below its
oldest parked delivery): a group reads the live log, so it would never deliver an
event archived before it got there.

A run killed part-way is finished by running it again with the same `-o DIR`: a
folder with its manifest is an archive whose files are complete, and each stream it
names is cut now unless it is cut already (the selection arguments are not used
again); a folder without a manifest is an archive that removed nothing, and its
segment files are written anew.

Both backends: the tool talks to the store only through its archive methods
(`archive_plan`, `archive_rows`, `archive_before`; eventstore/sqlite.py and
eventstore/postgres.py), each cut one transaction under the log's writer lock.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from eventstore import EventStore
from projections import catalogue as cat

from .audit_checks import EventRow
from .backup import check_dest, prepare_dest, redact
from .console import EXIT_OK, write_json
from .keep_format import (
    SegmentWriter,
    clear_unfinished,
    event_from_line,
    event_line,
    file_sha256,
    now_iso,
    read_lines,
    write_durably,
)
from .logio import UsageError, connect, resolve_url, run_tool

FORMAT = "hivelog-archive-v1"
MANIFEST = "archive.json"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


MAX_AGE_S = 10_000 * 365 * 86400  # older than the epoch: an age past it changes nothing


def parse_age(text: str) -> float:
    """`90d` -> seconds; s, m, h, d, w. Bounded, so the cut in microseconds stays a
    64-bit integer (an age of 10^20 days was a traceback from SQLite)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if match is None:
        raise UsageError(f"--older-than {text!r}: want a number and a unit (s, m, h, d, w)")
    return min(int(match.group(1)) * UNITS[match.group(2)], MAX_AGE_S)


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    if args.keep_last is not None and args.keep_last < 0:
        raise UsageError("--keep-last wants N >= 0")
    age = None if args.older_than is None else parse_age(args.older_than)
    url = resolve_url(args.db, must_exist=True)
    result = await archive(
        url,
        Path(args.out),
        older_than_s=age,
        keep_last=args.keep_last,
        session=args.session,
        dry_run=args.dry_run,
    )
    if args.json:
        write_json(result)
    else:
        sys.stdout.write(describe(result))
    return EXIT_OK


def describe(result: dict[str, Any]) -> str:
    verb = "would archive" if result["dry_run"] else "archived"
    if result.get("resumed"):  # a re-run with the folder of a run stopped part-way
        verb = f"finished the archive in the folder (cut {result['cut_now']} streams now):"
    held = result.get("held_back_by") or []
    lines = [
        f"  {s['stream_id']}: versions {s['from_version']}..{s['before_version'] - 1} "
        f"(positions {s['first_position']}..{s['last_position']})\n"
        for s in result["streams"]
    ]
    return (
        "".join(lines)
        + (
            f"{verb} {result['events']} events of {len(result['streams'])} streams "
            f"(at or below checkpoint position {result['checkpoint_position']})\n"
        )
        + (
            f"consumer groups not done with older events held the cut at position "
            f"{result['max_position']}: {', '.join(held)}\n"
            if held
            else ""
        )
    )


async def archive(
    url: str,
    out: Path,
    *,
    older_than_s: float | None,
    keep_last: int | None,
    session: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Archive the selection of `url` into `out`; returns the manifest (or the plan).
    An `out` holding the manifest of a run that was stopped part-way is finished."""
    resume = not dry_run and (out / MANIFEST).exists()
    if not dry_run and not resume:
        _clear_unfinished(out)
        check_dest(out)
    store = await connect(url)
    try:
        if resume:
            return await _finish(store, out)
        checkpoint = await store.load_checkpoint(cat.CHECKPOINT_NAME)
        if checkpoint is None:
            raise UsageError(
                "nothing can be archived before the sessions catalogue has a checkpoint "
                "(start the service once: it folds from the checkpoint)"
            )
        before_us = None
        if older_than_s is not None:
            before_us = time.time_ns() // 1000 - int(older_than_s * 1_000_000)
        limit, held = await groups_limit(store, checkpoint.position)
        plan = await store.archive_plan(
            max_position=limit,
            recorded_before_us=before_us,
            keep_last=keep_last,
            stream_id=session,
        )
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": now_iso(),
            "source": redact(url),
            "checkpoint_position": checkpoint.position,
            "max_position": limit,
            "held_back_by": held,
            "dry_run": dry_run,
            "events": 0,
            "streams": [],
            "files": {},
        }
        if not dry_run:
            prepare_dest(out)
        for index, (stream_id, first, cut) in enumerate(plan, start=1):
            rows = [EventRow._make(r) for r in await store.archive_rows(stream_id, cut)]
            if not rows or rows[0].version != first or rows[-1].version != cut - 1:
                raise UsageError(f"{stream_id}: versions {first}..{cut - 1} are not all live")
            entry: dict[str, Any] = {
                "stream_id": stream_id,
                "from_version": first,
                "before_version": cut,
                "events": len(rows),
                "first_position": rows[0].position,
                "last_position": rows[-1].position,
                "first_link": bytes(rows[0].chain or b"").hex(),
                "last_link": bytes(rows[-1].chain or b"").hex(),
            }
            if not dry_run:
                entry["file"] = _write_stream(out, index, rows, manifest["files"])
            manifest["streams"].append(entry)
            manifest["events"] += len(rows)
        if dry_run:
            return manifest
        _write_manifest(out, manifest)
        damaged = files_problems(out, manifest["files"])
        if damaged:  # read back before anything leaves the live log
            raise UsageError(f"archive folder does not read back, nothing removed: {damaged}")
        await _cut(store, manifest, check_links=False)
        return manifest
    finally:
        await store.close()


async def groups_limit(store: EventStore, limit: int) -> tuple[int, list[str]]:
    """`limit` lowered to what every consumer group is done with, and the groups that
    lowered it. A group finds new events in the live log after its cursor and reads its
    ready, in-flight and parked deliveries there by position: an event it has not
    delivered for good must stay live (a cursor or a delivery only moves up, so the
    bound holds for the whole run)."""
    subs = store.subscriptions
    held: list[str] = []
    for group in await subs.list_groups():
        done = group.checkpoint
        if group.parked:
            oldest = await subs.parked(group.name, 1)
            if oldest:
                done = min(done, oldest[0].position - 1)
        if done < limit:
            limit = done
            held.append(group.name)
    return limit, held


async def _finish(store: EventStore, out: Path) -> dict[str, Any]:
    """Cut the streams of a complete archive folder that are not cut yet (a run stopped
    after its manifest): the files are checked first, and each live range against the
    manifest's count and links, so only the archived events leave."""
    manifest = load_manifest(out)
    damaged = files_problems(out, manifest["files"])
    if damaged:
        raise UsageError(f"{out}: an unfinished archive that does not read back: {damaged}")
    manifest["resumed"] = True
    await _cut(store, manifest, check_links=True)
    return manifest


async def _cut(store: EventStore, manifest: dict[str, Any], *, check_links: bool) -> None:
    """Cut each stream the manifest names, unless it is cut already. A session erased
    since its events were written is passed over (listed in `erased_meanwhile`; its
    content stays in the folder, as for one erased after the archive), so one erase
    never leaves the other streams both live and archived. `check_links`: compare each
    live range with the manifest's links first (a re-run; the live log may have moved)."""
    manifest["cut_now"], manifest["erased_meanwhile"] = 0, []
    for entry in manifest["streams"]:
        stream_id, cut = entry["stream_id"], entry["before_version"]
        info = await store.stream_info(stream_id)
        if info is not None and info.truncated_before >= cut:
            continue  # cut before the run stopped
        if info is None or info.deleted:
            manifest["erased_meanwhile"].append(stream_id)
            continue
        if check_links:
            rows = [EventRow._make(r) for r in await store.archive_rows(stream_id, cut)]
            if (
                len(rows) != entry["events"]
                or bytes(rows[0].chain or b"").hex() != entry["first_link"]
                or bytes(rows[-1].chain or b"").hex() != entry["last_link"]
            ):
                raise UsageError(
                    f"{stream_id}: the live events below {cut} are not the archived ones"
                )
        await store.archive_before(stream_id, cut, entry["events"])
        manifest["cut_now"] += 1


ARCHIVE_FILES = re.compile(r"events-\d{6}\.jsonl\.gz|archive\.json\.tmp")


def _clear_unfinished(out: Path) -> None:
    """A folder with segment files but no manifest is a run stopped while writing them:
    nothing left the live log (that happens only after the manifest), so they go."""
    clear_unfinished(out, ARCHIVE_FILES, MANIFEST)


def read_archived(archives: Sequence[Path], cuts: dict[str, int]) -> list[EventRow]:
    """The events in archive folders whose streams are still cut (`cuts`: stream ->
    truncated_before), each folder's files checked first; one row per position (a
    folder given twice counts once), in position order."""
    rows: dict[int, EventRow] = {}
    for folder in archives:
        manifest = load_manifest(folder)
        damaged = files_problems(folder, manifest["files"])
        if damaged:
            raise UsageError(f"{folder}: {'; '.join(damaged)}")
        for entry in manifest["streams"]:
            if entry["before_version"] <= cuts.get(entry["stream_id"], 0):
                for line in read_lines(folder, entry["file"]):
                    row = event_from_line(line)
                    rows[row.position] = row
    return sorted(rows.values(), key=lambda r: r.position)


def uncovered(cuts: dict[str, int], stream_ids: Iterable[str]) -> list[str]:
    """The cut streams whose archived events (one stream id per event) are not exactly
    their versions below the cut: a fold from position 0 would lack some."""
    counted = Counter(stream_ids)
    return sorted(s for s, cut in cuts.items() if counted[s] != cut - 1)


def files_problems(folder: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """Files of an archive that are missing or whose bytes differ from the manifest."""
    problems = []
    for name, entry in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{name} differs from the manifest (SHA-256)")
    return problems


def load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise UsageError(f"{folder} holds no {MANIFEST}: not a hivelog archive")
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(f"{path}: not a {FORMAT} manifest")
    return raw


def _write_stream(
    out: Path, index: int, rows: list[EventRow], files: dict[str, dict[str, Any]]
) -> str:
    name = f"events-{index:06d}.jsonl.gz"
    writer = SegmentWriter(out, files)
    writer.open(name)
    for row in rows:
        writer.write(event_line(row), row.position)
    writer.close()  # synced: durable before the live copy goes
    return name


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Written whole or not at all (a temporary file renamed, the folder synced): its
    presence is what says the files are complete (see `_finish`)."""
    path = out / MANIFEST
    write_durably(path, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    manifest["manifest_sha256"] = file_sha256(path)
