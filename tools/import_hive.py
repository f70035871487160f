"""`hivelog import-hive HIVE_HOME`: an existing hive tree into the log, idempotently.

Each `events.jsonl` line of a session folder becomes one event of session stream `{id}`.
Both of hive's layouts are read: 3c390c9e's `agents/queens/{queen}/sessions/{id}` and
54fd8db's `queens/{queen}/sessions/{id}` (queen DMs) plus
`colonies/{colony}/queens/{queen}/sessions/{id}` (colony sessions); an id found in more
than one tree is imported once, from the first (54fd8db's order). Each line is stored as
hive's envelope (timestamp in UTC, origin and original timestamp in the event metadata),
with an event id derived from the file and line, so a second run appends only lines it
has not seen. Each session's `meta.json` and each colony's `metadata.json` /
`triggers.json` are recorded in the `$imports` stream (`hive_session_imported`,
`hive_colony_imported`). Lines that cannot be imported are listed with file and line and
skipped; any such problem makes the exit code 1. A big import parses the lines in two
other processes (tools/hive_parse.py) while this one writes, a few sessions ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from api.core.agent_files import (
    MAX_AGENT_FILE_BYTES,
    MAX_JSON_DEPTH,
    MAX_TRIGGERS_FILE_BYTES,
    AgentFileError,
    json_depth,
    read_agent_bytes,
)
from api.core.colonies import MAX_TRIGGERS
from eventstore import NO_STREAM, EventStore, NewEvent, StreamDeleted
from eventstore.bulk import BulkAppend, BulkRows, SQLiteBulkAppender
from eventstore.sqlite import sqlite_path_from_url
from eventstore.types import AppendResult, Expected, ExpectedState, RecordedEvent, StreamInfo
from projections.envelope import new_event
from projections.ids import is_valid_id
from projections.trigger_config import ConfigError, validate_config

from .console import EXIT_OK, EXIT_PROBLEMS, progress, write_json
from .hive_lines import IMPORT_NAMESPACE
from .hive_parse import InlineParser, Job, Parser, Row, open_parser
from .import_beside import BesideFile
from .logio import UsageError, connect, resolve_url, run_tool

if TYPE_CHECKING:
    from collections.abc import Sequence

IMPORTS_STREAM = "$imports"
BATCH = 10_000  # the store's limit per append: fewer commits (fsyncs) per import
# Appends of different sessions are in flight together (the store commits what is queued
# in one transaction: one fsync for many sessions); each session's own appends (and its
# `$imports` record) still follow one another. This bounds the events held meanwhile.
IN_FLIGHT_EVENTS = 50_000
# Files are parsed in other processes (tools/hive_parse.py) when there is this much
# to read; below it, starting a second interpreter costs more than it saves.
PARSE_PROCESS_MIN_BYTES = 8 << 20
# How many: one kept a core busy while the writer used about two thirds of the other (a
# 1M-event import, 2 cores); two spread the parsing over both (median 19.8 -> 16.6 s,
# alternating, noisy machine). More than the cores only adds processes.
PARSE_PROCESSES = min(2, os.cpu_count() or 1)
# Sessions prepared (stored ids read, parsing under way) ahead of the one being written.
LOOKAHEAD_SESSIONS = 4
# On SQLite the appends go in groups of about this many events, each group one
# transaction on the import's own connection (eventstore/bulk.py), committed in a
# thread while the next group parses.
GROUP_EVENTS = 40_000
MAX_PROBLEMS_LISTED = 1000


@dataclass(frozen=True, slots=True)
class SessionDir:
    queen_id: str
    session_id: str
    path: Path


@dataclass
class _Prepared:
    """A session read ahead: what its turn reports and appends."""

    session: SessionDir
    problems: list[tuple[str, str, int | None]]  # held until its turn (in order)
    importing: bool = False
    parsing: bool = False  # a parse job was submitted (its chunks are read in its turn)
    head: int = 0
    meta: Any = None


@dataclass
class Summary:
    sessions_found: int = 0
    sessions_imported: int = 0
    sessions_skipped: int = 0
    events_imported: int = 0
    events_already_present: int = 0
    lines_skipped: int = 0
    colonies_found: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, source: str, reason: str, line: int | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_LISTED:
            self.problems.append({"source": source, "line": line, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hive_home", metavar="HIVE_HOME", help="hive's home folder (~/.hive)")
    parser.add_argument(
        "--timezone",
        default=None,
        metavar="IANA",
        help="zone of hive's naive timestamps (default: this machine's local zone)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and report; append nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    home = Path(args.hive_home)
    if not _is_dir(home):
        raise UsageError(f"{home} is not a folder")
    tz: dt.tzinfo | None = None
    if args.timezone:
        try:
            tz = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {args.timezone!r}") from None
    sessions = find_sessions(home)
    colonies = sorted(p for p in (home / "colonies").glob("*") if p.is_dir())
    url = resolve_url(args.db, must_exist=False)
    summary = None
    beside = None
    if url.startswith("sqlite:///") and not args.dry_run:
        beside = BesideFile.for_absent(sqlite_path_from_url(url))
    if beside is not None:  # no log there yet: built beside it, then linked into place
        published = False
        try:
            summary = await _import(
                args, home, tz, sessions, colonies, f"sqlite:///{beside.temp}", own_file=True
            )
            published = beside.publish()
        finally:
            if not published:
                beside.drop()
        if not published:  # something created the log meanwhile: import into it
            summary = None
    if summary is None:
        summary = await _import(args, home, tz, sessions, colonies, url, own_file=False)
    if args.json:
        write_json(summary.to_dict())
    else:
        sys.stdout.write(render(summary, dry_run=args.dry_run))
    return EXIT_OK if summary.problem_count == 0 else EXIT_PROBLEMS


async def _import(
    args: argparse.Namespace,
    home: Path,
    tz: dt.tzinfo | None,
    sessions: list[SessionDir],
    colonies: list[Path],
    url: str,
    *,
    own_file: bool,
) -> Summary:
    """One import into `url`. `own_file`: a SQLite file no one else can have open (built
    beside the log's path): the load runs in a rollback journal, with the import's store
    closed until the load is committed."""
    summary = Summary(sessions_found=len(sessions))
    store: EventStore | StoreWhenFree = await connect(url)  # creates or migrates the schema
    bulk = None
    if url.startswith("sqlite:///") and not args.dry_run:
        bulk = SQLiteBulkAppender(sqlite_path_from_url(url))
        if own_file:
            await store.close()
            store = StoreWhenFree(url)
        # into an empty log: one transaction, indexes built at the end
        bulk.begin_load(own_file=own_file)
    total = sum(_size(s.path / "events.jsonl") for s in sessions)
    parser = open_parser(tz, total, PARSE_PROCESS_MIN_BYTES, PARSE_PROCESSES)
    importer = Importer(store, home, tz, summary, dry_run=args.dry_run, bulk=bulk, parser=parser)
    try:
        with progress("import", total) as advance:
            await importer.sessions(sessions, advance)
        for colony in colonies:
            await importer.colony(colony)
    finally:
        await importer.close()  # an append failed: the queued ones are not waited for
        parser.close()  # a parsing process is stopped (killed if it was not done)
        await store.close()
    return summary


def queen_trees(home: Path) -> list[Path]:
    """Every `queens` folder hive keeps sessions under, in hive 54fd8db's search order
    (SM:60-100): `queens`, then each colony's `queens`, then 3c390c9e's `agents/queens`."""
    trees = [home / "queens"]
    trees.extend(sorted(c / "queens" for c in (home / "colonies").glob("*") if c.is_dir()))
    trees.append(home / "agents" / "queens")
    return trees


def find_sessions(home: Path) -> list[SessionDir]:
    """`<tree>/*/sessions/*` folders of every queen tree, in a stable (sorted) order."""
    found: list[SessionDir] = []
    for tree in queen_trees(home):
        for queen in sorted(tree.glob("*")):
            for folder in sorted((queen / "sessions").glob("*")):
                if folder.is_dir():
                    found.append(SessionDir(queen.name, folder.name, folder))
    return found


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _absolute(path: Path) -> str:
    return str(path.resolve())


def _is_file(path: Path) -> bool:
    return path.is_file()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def content_id(kind: str, source: str, content: Any) -> str:
    """An id that changes only when the recorded content changes (idempotent records)."""
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return str(uuid.uuid5(IMPORT_NAMESPACE, f"{kind}:{source}:{digest}"))


class StoreWhenFree:
    """The import's store, opened at its first use: a load in a rollback journal
    (`SQLiteBulkAppender.begin_load(own_file=True)`) needs the file to itself, so the
    store stays closed until the load is committed (the importer asks nothing of it
    meanwhile: see `Importer._existing_ids`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: EventStore | None = None

    async def _open(self) -> EventStore:
        if self._store is None:
            self._store = await connect(self.url)
        return self._store

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        return await (await self._open()).stream_info(stream_id)

    async def read(
        self, stream_id: str, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        return await (await self._open()).read(stream_id, after_version, limit)

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected: Expected = ExpectedState.ANY
    ) -> AppendResult:
        return await (await self._open()).append(stream_id, events, expected)

    async def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()


class Importer:
    def __init__(
        self,
        store: EventStore | StoreWhenFree,
        home: Path,
        tz: dt.tzinfo | None,
        summary: Summary,
        *,
        dry_run: bool,
        bulk: SQLiteBulkAppender | None = None,
        parser: Parser | None = None,
    ) -> None:
        self.store = store
        self.parser: Parser = parser if parser is not None else InlineParser(tz)
        self._seen: dict[str, Path] = {}  # session id -> its folder (imported once)
        self._held: list[tuple[str, str, int | None]] | None = None
        self.bulk = bulk
        self._group: list[BulkAppend | BulkRows] = []
        self._group_events = 0
        self._committing: asyncio.Future[None] | None = None  # cleared once awaited
        self._thread: asyncio.Future[Any] | None = None  # the newest bulk call in a thread
        self.home = home
        self.tz = tz
        self.summary = summary
        self.dry_run = dry_run
        self._in_flight: deque[tuple[asyncio.Future[None], int]] = deque()
        self._queued_events = 0
        self._last: asyncio.Future[None] | None = None  # this session's newest queued append

    def rel(self, path: Path) -> str:
        return path.relative_to(self.home).as_posix()

    def _problem(self, source: str, reason: str, line: int | None = None) -> None:
        """Report now, or hold it for its session's turn (a session read ahead)."""
        if self._held is not None:
            self._held.append((source, reason, line))
        else:
            self.summary.problem(source, reason, line)

    def read_json(self, path: Path, want: type, limit: int = MAX_AGENT_FILE_BYTES) -> Any:
        """A JSON file's value, or None (missing, or reported as a problem). Read like an
        agent-folder file: no links, no special files, at most `limit` bytes and
        MAX_JSON_DEPTH levels, so the record stays under the store's per-event limit."""
        try:
            data = read_agent_bytes(path.parent.resolve() / path.name, limit)
        except (AgentFileError, OSError, RuntimeError) as exc:
            reason = exc.message if isinstance(exc, AgentFileError) else str(exc)
            self._problem(self.rel(path), f"refused ({reason})")
            return None
        if data is None:
            return None
        if json_depth(data) > MAX_JSON_DEPTH:
            self._problem(self.rel(path), f"JSON nested deeper than {MAX_JSON_DEPTH}")
            return None
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self._problem(self.rel(path), f"unreadable ({exc})")
            return None
        if not isinstance(value, want):
            self._problem(self.rel(path), f"not a JSON {want.__name__}")
            return None
        return value

    async def sessions(self, sessions: Sequence[SessionDir], advance: Any) -> None:
        """Import the session folders in order, each committed when this returns. The next
        few are read ahead (stored ids, parsing started) while one is written; what they
        report is held until their turn, so the report reads as one after another."""
        ahead: deque[_Prepared] = deque()
        for session in sessions:
            ahead.append(await self._prepare(session, advance))
            if len(ahead) > LOOKAHEAD_SESSIONS:
                await self._finish(ahead.popleft(), advance)
        while ahead:
            await self._finish(ahead.popleft(), advance)
        await self.drain()

    async def session(self, session: SessionDir, advance: Any) -> None:
        """Import one session folder; its events are committed when this returns."""
        await self.sessions([session], advance)

    async def _prepare(self, session: SessionDir, advance: Any) -> _Prepared:
        """Check one session folder, read its stored ids and submit its parse job."""
        prepared = _Prepared(session, [])
        self._held = prepared.problems
        try:
            await self._check(prepared, advance)
        finally:
            self._held = None
        return prepared

    async def _check(self, prepared: _Prepared, advance: Any) -> None:
        summary = self.summary
        session = prepared.session
        source = self.rel(session.path)
        events_path = session.path / "events.jsonl"
        sid = session.session_id
        if sid in self._seen:
            summary.sessions_skipped += 1
            self._problem(
                source, f"session id also under {self.rel(self._seen[sid])}; imported once"
            )
            return
        self._seen[sid] = session.path
        if not is_valid_id(sid):
            summary.sessions_skipped += 1
            self._problem(source, "not a valid session id; skipped")
            advance(_size(events_path))
            return
        prepared.meta = self.read_json(session.path / "meta.json", dict)
        existing = await self._existing_ids(sid, source)
        if existing is None:
            summary.sessions_skipped += 1
            advance(_size(events_path))
            return
        prepared.importing = True
        prepared.head = len(existing)
        if _is_file(events_path):
            self.parser.submit(Job(str(events_path), self.rel(events_path), frozenset(existing)))
            prepared.parsing = True

    async def _finish(self, prepared: _Prepared, advance: Any) -> None:
        """A prepared session's turn: its held problems, its lines' appends, its record."""
        summary = self.summary
        for source, reason, line in prepared.problems:
            summary.problem(source, reason, line)
        if not prepared.importing:
            return
        session = prepared.session
        sid = session.session_id
        source = self.rel(session.path)
        imported = 0
        if prepared.parsing:
            imported = await self._lines(sid, session.path / "events.jsonl", prepared.head, advance)
        if imported:
            summary.sessions_imported += 1
        record = {
            "session_id": sid,
            "queen_id": session.queen_id,
            "source": source,
            "meta": prepared.meta,
        }
        if self.bulk is not None and not self.dry_run:
            event = self._record_event("hive_session_imported", source, record)
            await self._grouped(BulkAppend(IMPORTS_STREAM, [event], ExpectedState.ANY), 1)
            return
        self._after_session(self._record("hive_session_imported", source, record))

    def _after_session(self, write: Coroutine[Any, Any, None]) -> None:
        """Run `write` once this session's queued appends are done (in their order)."""
        previous = self._last

        async def chained() -> None:
            if previous is not None:
                await previous
            await write

        self._last = None
        self._track(asyncio.ensure_future(chained()), 0)

    def _track(self, task: asyncio.Future[None], events: int) -> None:
        self._in_flight.append((task, events))
        self._queued_events += events

    async def _room(self, events: int) -> None:
        """Wait until `events` more fit in flight; raise the first failed append's error."""
        while self._in_flight and (
            self._in_flight[0][0].done() or self._queued_events + events > IN_FLIGHT_EVENTS
        ):
            task, count = self._in_flight.popleft()
            self._queued_events -= count
            await task

    async def _grouped(self, append: BulkAppend | BulkRows, events: int) -> None:
        """Add one append (of `events` events) to the group; a full group is committed
        (while the next parses)."""
        self._group.append(append)
        self._group_events += events
        if self._group_events >= GROUP_EVENTS:
            await self._commit_group()

    async def _commit_group(self) -> None:
        """Start committing the group once the previous group is committed."""
        if self._committing is not None:
            await self._committing  # cancelled here (Ctrl-C): still set, for `close`
            self._committing = None
        if self._group:
            group, self._group, self._group_events = self._group, [], 0
            self._committing = asyncio.ensure_future(self._commit(group))

    async def _commit(self, group: Sequence[BulkAppend | BulkRows]) -> None:
        """One transaction for the group; what it leaves goes through the store, in order
        (an expectation not met, a stored event id: the store decides as it always does)."""
        assert self.bulk is not None
        left: list[int] = await self._in_thread(self.bulk.append_many, group)
        for index in left:
            append = group[index]
            events = append.new_events()
            if append.stream_id == IMPORTS_STREAM:
                await self.store.append(IMPORTS_STREAM, events)
                continue
            try:
                await self.store.append(append.stream_id, events, expected=append.expected)
            except StreamDeleted:
                raise UsageError(
                    f"session {append.stream_id} was deleted while importing"
                ) from None

    async def drain(self) -> None:
        """Await every queued append (the first failure is raised, the rest cancelled)."""
        try:
            if self.bulk is not None:
                await self._commit_group()
                await self._commit_group()  # the last group
                if self.bulk.loading:  # build the event-id index, commit the load
                    await self._finish_load()
            while self._in_flight:
                task, count = self._in_flight.popleft()
                self._queued_events -= count
                await task
        finally:
            self.cancel()

    async def _finish_load(self) -> None:
        """`finish_load` in a thread (build the indexes, commit the load)."""
        assert self.bulk is not None
        await self._in_thread(self.bulk.finish_load)

    async def _in_thread(self, work: Callable[..., Any], *args: Any) -> Any:
        """`work(*args)` on the bulk connection, in a thread, shielded: a thread cannot
        be stopped, so if this is cancelled (Ctrl-C) it runs on, and `close` waits for
        it before rolling back and closing the connection under it."""
        thread = asyncio.ensure_future(asyncio.to_thread(work, *args))
        self._thread = thread
        return await asyncio.shield(thread)

    async def close(self) -> None:
        """Drop what is queued; a group mid-commit finishes (in its thread) first."""
        self.cancel()
        if self._committing is not None:
            await _ended(self._committing)
        if self._thread is not None:  # read after: the group's commit may start one
            await _ended(self._thread)
        self._committing = self._thread = None
        if self.bulk is not None:
            self.bulk.close()
            self.bulk = None

    def cancel(self) -> None:
        self._group, self._group_events = [], 0
        for task, _ in self._in_flight:
            task.cancel()
        self._in_flight.clear()
        self._queued_events = 0
        self._last = None

    async def _existing_ids(self, sid: str, source: str) -> set[str] | None:
        """Ids already in the session's stream; None (reported) if it must not be touched.
        None stored during a load: it began on an empty log and holds the write lock, so
        the store (which sees only what is committed) would find the stream missing."""
        if self.bulk is not None and self.bulk.loading:
            return set()
        info = await self.store.stream_info(sid)
        if info is None:
            return set()
        if info.deleted:
            self._problem(source, f"session {sid} was deleted in the log; not re-imported")
            return None
        ids: set[str] = set()
        after = 0
        while batch := await self.store.read(sid, after_version=after, limit=5000):
            for event in batch:
                origin = (event.metadata or {}).get("hive_import", {})
                if not str(origin.get("source", "")).startswith(source + "/"):
                    self._problem(
                        source, f"session {sid} is already in the log, not imported from here"
                    )
                    return None
                ids.add(event.event_id)
            after = batch[-1].version
        return ids

    async def _lines(self, sid: str, path: Path, head: int, advance: Any) -> int:
        """Read the file's parsed chunks (in order) and queue appends of up to BATCH
        events; they commit while the next lines parse."""
        source = self.rel(path)
        summary = self.summary
        batch: list[Row] = []
        imported = 0
        while True:
            chunk = await self.parser.next()
            advance(chunk.size)
            summary.events_already_present += chunk.present
            for line, reason in chunk.problems:
                summary.lines_skipped += 1
                summary.problem(source, reason, line)
            if chunk.error is not None:
                summary.problem(source, f"unreadable ({chunk.error}); the rest not imported")
            rows, taken = chunk.rows, 0
            while len(batch) + len(rows) - taken >= BATCH:
                cut = taken + BATCH - len(batch)
                batch.extend(rows[taken:cut])
                taken = cut
                await self._queue(sid, batch, head)
                head += len(batch)
                imported += len(batch)
                batch = []
            batch.extend(rows[taken:] if taken else rows)
            if chunk.last:
                break
        if batch:
            await self._queue(sid, batch, head)
            imported += len(batch)
        return imported

    async def _queue(self, sid: str, batch: list[Row], head: int) -> None:
        """Queue one append of this session after its previous one (on SQLite the rows
        as parsed, with the content digests the parsing computed)."""
        if self.bulk is not None and not self.dry_run:
            self.summary.events_imported += len(batch)
            await self._grouped(BulkRows(sid, batch, head or NO_STREAM), len(batch))
            return
        events = [NewEvent(kind, data, metadata, event_id)
                  for event_id, kind, data, metadata, _ in batch]  # fmt: skip
        await self._room(len(events))
        previous = self._last

        async def append() -> None:
            if previous is not None:
                await previous
            await self._append(sid, events, head)

        self._last = asyncio.ensure_future(append())
        self._track(self._last, len(events))

    async def _append(self, sid: str, batch: list[NewEvent], head: int) -> None:
        """Append at the version we expect (another writer makes this fail loudly)."""
        self.summary.events_imported += len(batch)
        if self.dry_run:
            return
        try:
            await self.store.append(sid, batch, expected=head or NO_STREAM)
        except StreamDeleted:
            raise UsageError(f"session {sid} was deleted while importing") from None

    async def colony(self, folder: Path) -> None:
        metadata = self.read_json(folder / "metadata.json", dict)
        triggers = self.read_json(folder / "triggers.json", list, MAX_TRIGGERS_FILE_BYTES)
        if triggers is not None and (problem := trigger_file_problem(triggers)) is not None:
            self.summary.problem(self.rel(folder / "triggers.json"), f"{problem}; not recorded")
            return
        if metadata is None and triggers is None:
            return
        self.summary.colonies_found += 1
        source = self.rel(folder)
        record = {
            "colony_name": folder.name,
            "agent_path": _absolute(folder),
            "source": source,
            "metadata": metadata,
            "triggers": triggers,
        }
        await self._record("hive_colony_imported", source, record)

    async def _record(self, event_type: str, source: str, record: dict[str, Any]) -> None:
        """One `$imports` event; the same content again is an idempotent retry (no-op)."""
        if self.dry_run:
            return
        await self.store.append(IMPORTS_STREAM, [self._record_event(event_type, source, record)])

    def _record_event(self, event_type: str, source: str, record: dict[str, Any]) -> NewEvent:
        event = new_event(
            event_type,
            record,
            timestamp=time.time(),
            stream_id=IMPORTS_STREAM,
            event_id=content_id(event_type, source, record),
        )
        # encoded as the store would (orjson), so the bulk path can take it as is
        return NewEvent(event.type, orjson.dumps(event.data), event.metadata, event.event_id)


async def _ended(future: asyncio.Future[Any]) -> None:
    """Wait until `future` is done, however it ends (its error or cancellation is the
    caller's to report, not this wait's; retrieved, so it is not logged as lost)."""
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()


def trigger_file_problem(triggers: list[Any]) -> str | None:
    """Why a colony's triggers.json must not be recorded (the same bounds as colony load:
    at most MAX_TRIGGERS entries, each timer/webhook config valid), or None."""
    if len(triggers) > MAX_TRIGGERS:
        return f"{len(triggers)} triggers; the limit is {MAX_TRIGGERS}"
    for item in triggers:
        if not isinstance(item, dict) or item.get("trigger_type") not in ("timer", "webhook"):
            continue
        config = item.get("trigger_config")
        try:
            validate_config(item["trigger_type"], config if isinstance(config, dict) else {})
        except ConfigError as exc:
            return f"trigger {str(item.get('id'))[:128]!r}: {exc.message}"
    return None


def render(summary: Summary, *, dry_run: bool) -> str:
    lines = [f"{p['source']}{':' + str(p['line']) if p['line'] else ''}: {p['reason']}"
             for p in summary.problems]  # fmt: skip
    if summary.problem_count > len(summary.problems):
        lines.append(f"... and {summary.problem_count - len(summary.problems)} more problems")
    verb = "would import" if dry_run else "imported"
    lines.append(
        f"{verb} {summary.events_imported} events into {summary.sessions_imported} of "
        f"{summary.sessions_found} sessions ({summary.events_already_present} already present, "
        f"{summary.lines_skipped} lines skipped, {summary.sessions_skipped} sessions skipped); "
        f"{summary.colonies_found} colonies recorded"
    )
    return "\n".join(lines) + "\n"
