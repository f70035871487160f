"""hivelog's backup format: a folder of gzip JSONL segments and a manifest, backend-neutral.

    DEST/manifest.json          what the copy holds and how to check it (below)
    DEST/events-000001.jsonl.gz one event per line, in position order, SEGMENT_EVENTS a file
    DEST/erased_links.jsonl.gz  the chain links erased events left behind
    DEST/streams.jsonl.gz       stream heads and tombstones
    DEST/checkpoints.jsonl.gz   projection checkpoints (state base64)

An event line keeps everything the chain covers, exactly: the stored payload and
metadata as JSON *strings* (their bytes, never re-encoded), the commit time in
microseconds, the digest and link in hex. The manifest records the head position,
the chain head, the counts, the schema version, when, and each file's SHA-256, so a
restore can prove it holds what was backed up. The same folder moves a log between
backends (`hivelog copy`).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .audit_checks import EventRow, StreamRow
from .logio import UsageError

FORMAT = "hivelog-backup-v1"
MANIFEST = "manifest.json"
SEGMENT_EVENTS = 100_000
GZIP_LEVEL = 3  # fast: a backup should finish quickly under load, not squeeze bytes


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else bytes(value).decode()


def event_line(row: EventRow) -> bytes:
    return orjson.dumps(
        {
            "position": row.position,
            "stream_id": row.stream_id,
            "version": row.version,
            "event_id": row.event_id,
            "type": row.type,
            "recorded_at_us": row.recorded_at_us,
            "data": _text(row.data),
            "metadata": _text(row.metadata),
            "digest": None if row.digest is None else bytes(row.digest).hex(),
            "chain": None if row.chain is None else bytes(row.chain).hex(),
        }
    )


def event_from_line(line: dict[str, Any]) -> EventRow:
    return EventRow(
        line["position"],
        line["stream_id"],
        line["version"],
        line["event_id"],
        line["type"],
        line["data"].encode(),
        None if line["metadata"] is None else line["metadata"].encode(),
        line["recorded_at_us"],
        None if line["digest"] is None else bytes.fromhex(line["digest"]),
        None if line["chain"] is None else bytes.fromhex(line["chain"]),
    )


def link_line(row: tuple[Any, ...]) -> bytes:
    position, stream_id, version, event_id, type_, recorded_at_us, digest, chain = row
    return orjson.dumps(
        [position, stream_id, version, event_id, type_, recorded_at_us, *map(_hex, (digest, chain))]
    )


def _hex(raw: bytes) -> str:
    return bytes(raw).hex()


def link_from_line(line: list[Any]) -> tuple[Any, ...]:
    return (*line[:6], bytes.fromhex(line[6]), bytes.fromhex(line[7]))


def stream_line(row: StreamRow) -> bytes:
    return orjson.dumps(list(row))


def checkpoint_line(name: str, position: int, state: bytes) -> bytes:
    return orjson.dumps([name, position, base64.b64encode(state).decode()])


@dataclass
class Manifest:
    """What a backup holds; `files` maps each file to its SHA-256 and line count."""

    created_at: str
    source: str
    schema_version: int
    head_position: int
    chain_head: dict[str, Any]
    events: int
    streams: int
    deleted_streams: int
    erased_links: int
    checkpoints: int
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise UsageError(f"{folder} holds no {MANIFEST}: not a hivelog backup")
        try:
            raw = orjson.loads(path.read_bytes())
            if raw.get("format") != FORMAT:
                raise UsageError(f"{path}: format {raw.get('format')!r}, want {FORMAT!r}")
            return cls(**raw)
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path} is not a valid manifest: {exc}") from None

    def write(self, folder: Path) -> None:
        """Whole or not at all, and on disk before the backup is reported done: the
        manifest is what says the folder is a finished backup."""
        data = orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        write_durably(folder / MANIFEST, data)


def write_durably(path: Path, data: bytes) -> None:
    """`data` at `path` through a temporary file, renamed, with the file and its folder
    synced: a crash leaves the old state or the new one, never a torn file."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    temporary.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# The files a backup writes (a folder holding only these and no manifest is a backup
# that was stopped before it finished).
BACKUP_FILES = re.compile(
    r"events-\d{6}\.jsonl\.gz|(erased_links|streams|checkpoints)\.jsonl\.gz|manifest\.json\.tmp"
)


def clear_unfinished(folder: Path, names: re.Pattern[str], manifest: str) -> None:
    """Remove a run's own files from `folder` when it has no `manifest`: the run was
    stopped before it finished (the manifest is written last), so they are of no use
    and the same command can start again. A folder with anything else is left alone."""
    if not folder.is_dir() or (folder / manifest).exists():
        return
    found = list(folder.iterdir())
    if found and all(p.is_file() and names.fullmatch(p.name) for p in found):
        for path in found:
            path.unlink()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SegmentWriter:
    """Writes lines to gzip files, hashing each file as it goes (for the manifest)."""

    def __init__(self, folder: Path, manifest_files: dict[str, dict[str, Any]]) -> None:
        self.folder = folder
        self.files = manifest_files
        self._name: str | None = None
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        self._lines = 0
        self._first: int | None = None
        self._last: int | None = None

    def open(self, name: str) -> None:
        self.close()
        self._name = name
        self._raw = (self.folder / name).open("wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        self._lines, self._first, self._last = 0, None, None

    def write(self, line: bytes, position: int | None = None) -> None:
        assert self._gz is not None
        self._gz.write(line + b"\n")
        self._lines += 1
        if position is not None:
            self._first = position if self._first is None else self._first
            self._last = position

    @property
    def lines(self) -> int:
        return self._lines

    def close(self) -> None:
        if self._gz is None or self._raw is None or self._name is None:
            return
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())  # on disk before the manifest says it is there
        self._raw.close()
        entry: dict[str, Any] = {
            "sha256": file_sha256(self.folder / self._name),
            "lines": self._lines,
        }
        if self._first is not None:
            entry.update(first_position=self._first, last_position=self._last)
        self.files[self._name] = entry
        self._gz = self._raw = None
        self._name = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_lines(folder: Path, name: str) -> Iterator[Any]:
    """The parsed lines of one file of the backup (none if it is absent from the manifest)."""
    path = folder / name
    if not path.is_file():
        return
    with gzip.open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def event_files(manifest: Manifest) -> list[str]:
    return sorted(n for n in manifest.files if n.startswith("events-"))


def check_files(folder: Path, manifest: Manifest) -> list[str]:
    """Files that are missing or whose bytes differ from the manifest."""
    problems = []
    for name, entry in sorted(manifest.files.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{name} differs from the manifest (SHA-256)")
    return problems


def checkpoint_from_line(line: list[Any]) -> tuple[str, int, bytes]:
    return line[0], int(line[1]), base64.b64decode(line[2])


def stream_from_line(line: list[Any]) -> StreamRow:
    cut = int(line[5]) if len(line) > 5 else 0  # backups before archiving have no cut
    return StreamRow(line[0], int(line[1]), int(line[2]), bool(line[3]), int(line[4]), cut)


MAX_PROBLEMS = 10  # a damaged backup is named by its first few faults, not all of them


def prove_events(folder: Path, manifest: Manifest) -> list[str]:
    """What in the backup's own bytes disagrees with itself, before anything is loaded:
    each event's content against its digest, the chain recomputed over the events and
    the erased links in position order against every stored link and the manifest's
    chain head, positions strictly increasing, and the counts. A backup whose files
    were edited along with their SHA-256 in the manifest is refused here, while the
    target is still untouched (afterwards only the audit of the loaded copy would say)."""
    from eventstore.chain import GENESIS, content_digest, link

    problems: list[str] = []
    links = sorted(
        (link_from_line(x) for x in read_lines(folder, "erased_links.jsonl.gz")),
        key=lambda x: int(x[0]),
    )
    pending = iter(links)
    upcoming = next(pending, None)
    prev, last, events = GENESIS, 0, 0

    def step(row: Sequence[Any], digest: bytes, chain: bytes) -> None:
        """One position of the chain: (position, stream, version, id, type, time)."""
        nonlocal prev, last
        position = int(row[0])
        if position <= last:
            problems.append(f"position {position}: not after position {last}")
        if link(prev, position, row[1], row[2], row[3], row[4], row[5], digest) != chain:
            problems.append(f"position {position}: link differs from the chain recomputed")
        prev, last = chain, position

    for name in event_files(manifest):
        for line in read_lines(folder, name):
            while upcoming is not None and int(upcoming[0]) < line["position"]:
                step(upcoming[:6], upcoming[6], upcoming[7])
                upcoming = next(pending, None)
            events += 1
            row = event_from_line(line)
            digest, chain = row.digest or b"", row.chain or b""
            metadata = None if line["metadata"] is None else line["metadata"].encode()
            if content_digest(line["data"].encode(), metadata) != digest:
                problems.append(f"position {row.position}: content differs from its digest")
            head = (row.position, row.stream_id, row.version, row.event_id, row.type)
            step((*head, row.recorded_at_us), digest, chain)
            if len(problems) >= MAX_PROBLEMS:
                return problems
    while upcoming is not None:
        step(upcoming[:6], upcoming[6], upcoming[7])
        upcoming = next(pending, None)
    if events != manifest.events:
        problems.append(f"{events} events, the manifest says {manifest.events}")
    if len(links) != manifest.erased_links:
        problems.append(f"{len(links)} erased links, the manifest says {manifest.erased_links}")
    ends = {"position": last, "hash": prev.hex()}
    if ends != manifest.chain_head:
        problems.append(f"the chain ends at {ends}, the manifest says {manifest.chain_head}")
    return problems[:MAX_PROBLEMS]
