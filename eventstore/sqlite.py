"""The SQLite backend: WAL, synchronous=FULL, one writer thread with group commit.

Writes go through a single writer task. Appends that arrive while a commit is in
flight queue up and are committed together in the next transaction (group
commit): one fsync for many appends. Each append still gets its own
expected-version check inside a savepoint, so one conflict fails only that
append. The whole batch runs in one hop to a dedicated thread that owns a
stdlib `sqlite3` connection: a batch is dozens of statements, and paying an
aiosqlite thread hop (~50 us) per statement would cost more than the fsync.

Reads go through aiosqlite connections (WAL readers never block the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from . import sqlite_checkpoints as checkpoints
from .base import (
    Doorbell,
    EventStore,
    encode_events,
    plan_cuts,
    validate_checkpoint_name,
    validate_count,
    validate_expected,
    validate_stream_id,
    validate_window,
)
from .chain import GENESIS, content_digest, link
from .retry import resolve_retry
from .sqlite_batch import BatchContext, Job
from .sqlite_leases import SQLiteLeases
from .sqlite_subscriptions import SQLiteSubscriptions
from .sqlite_verify import inspect_file
from .tail_array import NO_HEAD, SQLITE_TAIL_ARRAY, TailArray, TailCache
from .types import (
    AppendResult,
    ChainHead,
    Checkpoint,
    EncodedEvent,
    EventStoreError,
    Expected,
    ExpectedState,
    InvalidEvent,
    JsonRow,
    JsonTailPage,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    StreamDeleted,
    StreamInfo,
    TailPage,
    WrongExpectedVersion,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# Primary result codes meaning "the storage cannot take this write now" (not a bug).
UNAVAILABLE_CODES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_CANTOPEN}
    | {sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_LOCKED}
)


def _as_unavailable(exc: BaseException) -> BaseException:
    """A failed commit as `StoreUnavailable` when the storage (not the input) is at fault."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in UNAVAILABLE_CODES:
        failure = StoreUnavailable(f"SQLite: {exc}")
    elif isinstance(exc, OSError):
        failure = StoreUnavailable(f"SQLite file: {exc}")
    else:
        return exc
    failure.__cause__ = exc
    return failure


MAX_JOBS_PER_COMMIT = 1000
# WAL checkpoints run on their own thread and connection (PASSIVE: they never block the
# writer), about every CHECKPOINT_PAGES written pages (the writer's estimate), instead
# of inside the commit that crosses SQLite's threshold: measured 1.2-1.6x more events/s
# for 32 writers. The writer's own auto-checkpoint stays on, further out, as a backstop.
CHECKPOINT_PAGES = 1000
WRITER_CHECKPOINT_PAGES = 4000
ERASE_CHECKPOINT_WAIT_MS = 50
VACUUM_PAGES_PER_ERASE = 4096  # 16 MiB at 4 KiB pages: the file shrinks, the writer barely waits
# One reader thread: measured, 1 serves concurrent tails 1.6-2x faster than 2 or 4
# (more threads only fight over the GIL while building rows); HTTP history 1.1x.
READER_CONNECTIONS = 1
READER_MMAP_BYTES = 1 << 30  # reads map the file: no read() syscall per page
READER_CACHE_KIB = 64 * 1024

# The hash chain: a digest and a link per event; erased events keep theirs in
# erased_links (content gone, link kept), so the chain still verifies after an erase.
CHAIN_MIGRATION = """
    ALTER TABLE events ADD COLUMN digest BLOB;
    ALTER TABLE events ADD COLUMN chain BLOB;
    ALTER TABLE log_head ADD COLUMN chain_position INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE log_head ADD COLUMN chain_hash BLOB;
    CREATE TABLE erased_links (
        position INTEGER PRIMARY KEY,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        recorded_at INTEGER NOT NULL,
        digest BLOB NOT NULL,
        chain BLOB NOT NULL
    );
"""

MIGRATIONS: list[str] = [
    # 1: the log, stream heads and projection checkpoints.
    """
    CREATE TABLE log_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_position INTEGER NOT NULL
    );
    INSERT INTO log_head (id, last_position) VALUES (1, 0);
    CREATE TABLE streams (
        stream_id TEXT PRIMARY KEY,
        head_version INTEGER NOT NULL,
        head_position INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        erased_events INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE events (
        position INTEGER PRIMARY KEY,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        metadata BLOB,
        recorded_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX events_stream_version ON events (stream_id, version);
    CREATE INDEX events_stream_position ON events (stream_id, position);
    CREATE UNIQUE INDEX events_event_id ON events (event_id);
    CREATE TABLE checkpoints (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        state BLOB NOT NULL,
        saved_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: leases (node liveness, claims on due trigger fires); see eventstore/leases.py.
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        fence INTEGER NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 3: the hash chain (eventstore/chain.py); existing events are hashed once, here.
    CHAIN_MIGRATION,
    # 4: consumer groups: settings + cursor, and one row per outstanding delivery
    # (eventstore/subscriptions.py). Acked deliveries are deleted.
    """
    CREATE TABLE subscription_groups (
        name TEXT PRIMARY KEY,
        settings BLOB NOT NULL,
        cursor INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE subscription_deliveries (
        group_name TEXT NOT NULL,
        position INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        handouts INTEGER NOT NULL,
        state TEXT NOT NULL,
        deadline REAL NOT NULL,
        worker TEXT,
        reason TEXT,
        PRIMARY KEY (group_name, position)
    ) WITHOUT ROWID;
    CREATE INDEX subscription_deliveries_state
        ON subscription_deliveries (group_name, state, position);
    """,
    # 5: archiving (truncate-before): versions below the cut were moved to an archive;
    # their links stay in erased_links so the chain still verifies (tools/archive.py).
    """
    ALTER TABLE streams ADD COLUMN truncated_before INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: a large checkpoint is stored in parts (eventstore/sqlite_checkpoints.py).
    checkpoints.MIGRATION,
]

EVENT_COLUMNS = "stream_id, version, position, event_id, type, data, metadata, recorded_at"


def sqlite_path_from_url(url: str) -> str:
    """`sqlite:///rel/path.db` -> `rel/path.db`; `sqlite:////abs/path.db` -> `/abs/path.db`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise InvalidEvent(f"not a sqlite URL (want sqlite:///path): {url!r}")
    path = url[len(prefix) :]
    if not path or path == ":memory:" or path.startswith("file:"):
        raise InvalidEvent("sqlite URL needs a file path (in-memory databases are not durable)")
    return path


@dataclass
class _Request:
    job: Job
    future: asyncio.Future[Any] = field(repr=False)


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")


class SQLiteStore(EventStore):
    """Event store in one SQLite file. Create with `await SQLiteStore.open(path)`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.doorbell = Doorbell()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Request] = []  # submitted, not yet handed to the writer thread
        self._in_flight = False  # a batch is in the writer thread
        self._dispatch_due = False  # a `_dispatch` call is scheduled
        self._drained: asyncio.Future[None] | None = None  # close() waits on it
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivelog-writer")
        self._conn: sqlite3.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._reader_cycle: Iterable[aiosqlite.Connection] = ()
        self._closed = False
        self._leases = SQLiteLeases(self._submit, self._fetch)
        self._subscriptions = SQLiteSubscriptions(self._submit)
        self._tail_cache = TailCache()  # hot history pages, checked against the head per read
        self.batch_sizes: list[int] = []  # recent group-commit sizes, for metrics and bench
        self._heads: dict[str, tuple[int, bool]] = {}  # writer thread only (BatchContext)
        self._data_version = -1
        self._checkpoint_saves: dict[str, asyncio.Lock] = {}
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="hivelog-checkpoint")
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()  # a checkpoint, or an erase's WAL truncation
        self._checkpoint_running = False
        self._pages_since_checkpoint = 0  # writer thread only
        self.on_commit: list[Callable[[int, float], None]] = []  # (appends, seconds) hooks

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        store = cls(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(store._executor, store._open_writer)
        for _ in range(READER_CONNECTIONS):
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=10000")
            await reader.execute("PRAGMA query_only=1")
            await reader.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
            await reader.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            store._readers.append(reader)
        store._reader_cycle = itertools.cycle(store._readers)
        store._loop = loop
        return store

    # ---- writer thread -------------------------------------------------------------

    def _open_writer(self) -> None:
        # Read-only look first: a foreign, newer or damaged file is refused untouched.
        fresh = inspect_file(self.path, len(MIGRATIONS)).fresh
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if fresh:  # only settable before the first table: new files give space back
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        _configure(conn)
        conn.execute("PRAGMA secure_delete=ON")  # erased events leave no bytes behind
        conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in applied:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if script is CHAIN_MIGRATION:
                    _backfill_chain(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time_ns() // 1000),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn = conn

    def _commit_batch(self, jobs: list[Job]) -> tuple[list[Any], int]:
        """Run every job in one transaction; a job's EventStoreError undoes only that job.
        Returns the outcomes and the log head as committed (for the doorbell).

        Consecutive appends are checked and written as one run (`_append_run`): one
        look-up of their streams' heads and one INSERT per table for the whole run.
        """
        conn = self._conn
        assert conn is not None
        outcomes: list[Any] = []
        heads = self._heads
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another connection committed (a tool on the same file): cached heads may be stale.
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if data_version != self._data_version or len(heads) > HEADS_CACHED:
                heads.clear()
                self._data_version = data_version
            last_position, chain_position, chain_hash = conn.execute(
                "SELECT last_position, chain_position, chain_hash FROM log_head"
            ).fetchone()
            ctx = BatchContext(
                conn,
                last_position,
                time.time_ns() // 1000,
                chain_position,
                chain_hash or GENESIS,
                heads=heads,
            )
            run: list[_Append] = []
            for job in jobs:
                if isinstance(job, _Append):
                    run.append(job)
                    continue
                if run:
                    outcomes += _append_run(ctx, run)
                    run = []
                heads.clear()  # other jobs may change streams (delete, archive)
                outcomes.append(_isolated(ctx, job))
            if run:
                outcomes += _append_run(ctx, run)
            if ctx.last_position != last_position:
                conn.execute(
                    "UPDATE log_head SET last_position = ?, chain_position = ?, chain_hash = ?",
                    (ctx.last_position, ctx.chain_position, ctx.chain_hash),
                )
            conn.execute("COMMIT")
        except BaseException:
            heads.clear()  # it may hold this transaction's heads, now undone
            if conn.in_transaction:
                # SQLite may have rolled back already (e.g. disk full): report the cause
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        if ctx.erased:
            with self._checkpoint_lock:
                _after_erase(conn)
        self._pages_since_checkpoint += 2 + len(jobs) + ctx.last_position - last_position
        if self._pages_since_checkpoint >= CHECKPOINT_PAGES and not self._checkpoint_running:
            self._pages_since_checkpoint = 0
            self._checkpoint_running = True
            self._checkpointer.submit(self._checkpoint)
        return outcomes, ctx.last_position

    def _checkpoint(self) -> None:
        """Copy the WAL's committed pages into the database file (checkpoint thread)."""
        try:
            with self._checkpoint_lock:
                if self._closed:
                    return
                conn = self._checkpoint_conn
                if conn is None:
                    conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA synchronous=FULL")
                    self._checkpoint_conn = conn
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("background WAL checkpoint failed (the writer's is the backstop): %s", exc)
        finally:
            self._checkpoint_running = False

    # ---- the hand-off between the event loop and the writer thread -----------------
    #
    # One hop each way per batch: `_dispatch` hands every queued request to the writer
    # thread, which commits them and schedules `_finish` on the loop once, with all
    # outcomes. Requests submitted meanwhile wait in `_pending` for the next batch.

    async def _submit(self, job: Callable[[BatchContext], T]) -> T:
        return await self._enqueue(job)

    def _enqueue(self, job: Callable[[BatchContext], T]) -> asyncio.Future[T]:
        """Queue a job for the next transaction; its future resolves after the commit.

        Awaited directly (no shield: it cost a loop pass per append). A cancelled caller
        cancels only its own future; its job still runs (the writer skips a done future),
        and a cancelled future is never given an outcome nobody would read.
        """
        loop = self._loop
        if self._closed or loop is None:
            raise EventStoreError("the store is closed")
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Request(job, future))
        if not self._in_flight and not self._dispatch_due:
            # after the tasks already ready to run: their appends join this batch
            self._dispatch_due = True
            loop.call_soon(self._dispatch)
        return future

    def _dispatch(self) -> None:
        self._dispatch_due = False
        if self._in_flight or not self._pending:
            return
        requests = self._pending[:MAX_JOBS_PER_COMMIT]
        del self._pending[:MAX_JOBS_PER_COMMIT]
        self._in_flight = True
        self._executor.submit(self._run_batch, requests, time.perf_counter())

    def _run_batch(self, requests: list[_Request], started: float) -> None:
        """Writer thread: commit the batch, then hand every outcome back in one call."""
        outcomes: list[Any] | None = None
        head = 0
        failure: BaseException | None = None
        try:
            outcomes, head = self._commit_batch([r.job for r in requests])
        except BaseException as exc:  # the commit itself failed: nobody is acknowledged
            failure = exc
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._finish, requests, outcomes, head, failure, started)

    def _finish(
        self,
        requests: list[_Request],
        outcomes: list[Any] | None,
        head: int,
        failure: BaseException | None,
        started: float,
    ) -> None:
        self._in_flight = False
        try:
            if outcomes is None:
                unavailable = _as_unavailable(failure or EventStoreError("commit failed"))
                for request in requests:
                    if not request.future.done():
                        request.future.set_exception(unavailable)
            else:
                self.batch_sizes.append(len(requests))
                if len(self.batch_sizes) > 10_000:
                    del self.batch_sizes[:5_000]
                self._notify_commit(len(requests), time.perf_counter() - started)
                for request, outcome in zip(requests, outcomes, strict=True):
                    if request.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        request.future.set_exception(outcome)
                    else:
                        request.future.set_result(outcome)
                self.doorbell.ring(head)
        finally:
            if self._pending:
                if not self._dispatch_due:
                    # after the callers just woken: their next appends join this batch
                    self._dispatch_due = True
                    asyncio.get_running_loop().call_soon(self._dispatch)
            elif self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    # ---- appends -------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected: Expected = ExpectedState.ANY
    ) -> AppendResult:
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected(expected)
        encoded = encode_events(events)
        return await self._enqueue(_Append(stream_id, encoded, expected))

    async def delete_stream(self, stream_id: str) -> None:
        stream_id = validate_stream_id(stream_id)
        await self._submit(lambda ctx: _delete_job(ctx, stream_id))

    async def save_checkpoint(self, name: str, position: int, state: bytes) -> None:
        """Written in parts when large, each in its own transaction, so appends keep
        committing meanwhile (see eventstore/sqlite_checkpoints.py)."""
        name = validate_checkpoint_name(name)
        validate_count("position", position)
        if not isinstance(state, bytes):
            raise InvalidEvent("checkpoint state must be bytes")
        lock = self._checkpoint_saves.setdefault(name, asyncio.Lock())
        async with lock:  # this store's saves of one name take turns
            generation = time.time_ns()
            parts = checkpoints.split(state)
            for index, data in enumerate(parts):
                await self._submit(
                    functools.partial(
                        checkpoints.write_part,
                        name=name,
                        generation=generation,
                        part=index,
                        data=data,
                    )
                )
            await self._submit(
                functools.partial(
                    checkpoints.publish,
                    name=name,
                    position=position,
                    state=state,
                    generation=generation,
                    parts=parts,
                )
            )
            drop = functools.partial(checkpoints.drop_stale, name=name, generation=generation)
            while await self._submit(drop):
                pass

    # ---- reads ---------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        reader = next(iter(self._reader_cycle))
        rows = await reader.execute_fetchall(sql, params)
        return rows if isinstance(rows, list) else list(rows)

    async def _events(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        # Rows come back in RecordedEvent's field order: one C-level tuple copy each.
        return list(map(RecordedEvent._make, await self._fetch(sql, params)))

    async def tail(self, stream_id: str, n: int) -> TailPage:
        stream_id = validate_stream_id(stream_id)
        validate_count("n", n)
        newest = await self._events(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT ?",
            (stream_id, n),
        )
        newest.reverse()
        return TailPage(newest, await self._total(stream_id, newest))

    async def tail_json(self, stream_id: str, n: int) -> JsonTailPage:
        stream_id = validate_stream_id(stream_id)
        validate_count("n", n)
        rows = await self._fetch(
            "SELECT position, version, type, data FROM events WHERE stream_id = ? "
            "ORDER BY version DESC LIMIT ?",
            (stream_id, n),
        )
        newest = list(map(JsonRow._make, reversed(rows)))
        return JsonTailPage(newest, await self._total(stream_id, newest))

    async def read(
        self,
        stream_id: str,
        after_version: int = 0,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        stream_id = validate_stream_id(stream_id)
        validate_count("after_version", after_version)
        validate_count("limit", limit, allow_none=True)
        sql_limit = -1 if limit is None else limit
        if backwards:
            upper = after_version if after_version > 0 else 2**62
            events = await self._events(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version < ? "
                "ORDER BY version DESC LIMIT ?",
                (stream_id, upper, sql_limit),
            )
        else:
            events = await self._events(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version > ? "
                "ORDER BY version LIMIT ?",
                (stream_id, after_version, sql_limit),
            )
        if not events:
            await self._raise_if_deleted(stream_id)
        return events

    async def read_positions(
        self,
        stream_id: str,
        *,
        after_position: int | None = None,
        before_position: int | None = None,
        limit: int,
        newest_first: bool = False,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        stream_id = validate_window(stream_id, limit, after_position, before_position)
        where = ["stream_id = ?"]
        params: list[Any] = [stream_id]
        if after_position is not None:
            where.append("position > ?")
            params.append(after_position)
        if before_position is not None:
            where.append("position < ?")
            params.append(before_position)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        order = "DESC" if newest_first else "ASC"
        params.append(limit)
        events = await self._events(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            f"ORDER BY position {order} LIMIT ?",
            params,
        )
        if not events:
            await self._raise_if_deleted(stream_id)
        return events

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        validate_count("after_position", after_position)
        validate_count("limit", limit)
        if types:
            marks = ",".join("?" * len(types))
            return await self._events(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE position > ? AND type IN ({marks}) "
                "ORDER BY position LIMIT ?",
                (after_position, *types, limit),
            )
        return await self._events(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (after_position, limit),
        )

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        rows = await self._fetch(
            "SELECT stream_id, head_version, head_position, deleted, erased_events, "
            "truncated_before FROM streams WHERE stream_id = ?",
            (stream_id,),
        )
        if not rows:
            return None
        sid, head, head_position, deleted, erased, cut = rows[0]
        return StreamInfo(sid, head, head_position, bool(deleted), erased, cut)

    async def archived_after(self, after_position: int, stream_id: str | None = None) -> bool:
        """An archived link past `after_position`: of `stream_id` (below its cut), else of
        any stream not erased (an erased session's links are not archived events). The
        primary key range from the cursor up, so a recent cursor reads little."""
        await super().archived_after(after_position, stream_id)
        if stream_id is not None:
            found = await self._fetch(ARCHIVED_AFTER_IN_STREAM, (after_position, stream_id))
        else:
            found = await self._fetch(ARCHIVED_AFTER, (after_position,))
        return bool(found)

    async def tail_array(self, stream_id: str, n: int) -> TailArray:
        """The newest `n` events spliced into one JSON array by SQLite, with the stream's
        head row: one statement, one snapshot, no per-row Python objects (tail_array.py)."""
        stream_id = validate_stream_id(stream_id)
        validate_count("n", n)
        cached = self._tail_cache.lookup(stream_id, n)
        head = cached.head if cached is not None else NO_HEAD
        rows = await self._fetch(SQLITE_TAIL_ARRAY, (stream_id, n, *head))
        return self._tail_cache.finish(stream_id, n, rows[0], cached)

    # ---- archiving (truncate-before; tools/archive.py) -----------------------------

    async def archive_plan(
        self,
        *,
        max_position: int,
        recorded_before_us: int | None,
        keep_last: int | None,
        stream_id: str | None = None,
    ) -> list[tuple[str, int, int]]:
        """(stream, first live version, cut) for each live session stream with a prefix to
        archive: only events at or below `max_position` (the projections' checkpoint)."""
        where = "s.deleted = 0 AND s.stream_id NOT LIKE '$%'"
        params: list[Any] = [max_position, recorded_before_us or 0]
        if stream_id is not None:
            where += " AND s.stream_id = ?"
            params.append(stream_id)
        rows = await self._fetch(
            "SELECT s.stream_id, s.head_version, "
            "(SELECT MIN(version) FROM events e WHERE e.stream_id = s.stream_id), "
            "(SELECT MAX(version) FROM events e WHERE e.stream_id = s.stream_id "
            " AND e.position <= ?), "
            "(SELECT MAX(version) FROM events e WHERE e.stream_id = s.stream_id "
            f" AND e.recorded_at < ?) FROM streams s WHERE {where} ORDER BY s.stream_id",
            params,
        )
        return plan_cuts(rows, recorded_before_us, keep_last)

    async def archive_rows(self, stream_id: str, before_version: int) -> list[tuple[Any, ...]]:
        """The live events below the cut with their digest and link (backup row order)."""
        return await self._fetch(
            "SELECT position, stream_id, version, event_id, type, data, metadata, recorded_at, "
            "digest, chain FROM events WHERE stream_id = ? AND version < ? ORDER BY version",
            (stream_id, before_version),
        )

    async def archive_before(self, stream_id: str, before_version: int, expected: int) -> int:
        """Remove a stream's versions below `before_version` in one transaction, keeping
        their links in erased_links; refuses (nothing changes) unless exactly `expected`
        events go. Versions, positions and the head never change."""
        stream_id = validate_stream_id(stream_id)
        return await self._submit(
            lambda ctx: _archive_job(ctx, stream_id, before_version, expected)
        )

    async def restore_archived(self, stream_id: str, rows: list[tuple[Any, ...]]) -> int:
        """Put archived rows back, each checked against the link it left behind."""
        stream_id = validate_stream_id(stream_id)
        return await self._submit(lambda ctx: _unarchive_job(ctx, stream_id, rows))

    async def head_position(self) -> int:
        rows = await self._fetch("SELECT last_position FROM log_head", ())
        return int(rows[0][0])

    async def chain_head(self) -> ChainHead:
        rows = await self._fetch("SELECT chain_position, chain_hash FROM log_head", ())
        position, chain_hash = rows[0]
        return ChainHead(int(position), bytes(chain_hash) if chain_hash else GENESIS)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        name = validate_checkpoint_name(name)
        found = checkpoints.join_parts(await self._fetch(checkpoints.STATE_SQL, (name,)))
        if found is None:
            return None
        return Checkpoint(name, *found)

    async def _close(self) -> None:
        """Run what is queued (new jobs are refused since `_closed`), then close all."""
        loop = asyncio.get_running_loop()
        if self._in_flight or self._pending:
            self._drained = loop.create_future()
            await self._drained
        await loop.run_in_executor(self._executor, self._checkpointer.shutdown)  # waits
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
        for reader in self._readers:
            await reader.close()
        conn = self._conn
        if conn is not None:
            await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)


def _after_erase(conn: sqlite3.Connection) -> None:
    """Give erased space back to the file system, and move erased pages out of the WAL.

    Runs after the erase committed, so a failure here must not fail the appends in
    the batch: it is logged and the next erase tries again. Bounded per call, so one
    huge erase does not stall the writer; TRUNCATE waits (busy handler) for readers
    on an older snapshot, e.g. a backup or an audit: only briefly.
    """
    try:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # incremental
            # executescript steps the pragma to the end (execute frees only one page).
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES_PER_ERASE});")
        conn.execute(f"PRAGMA busy_timeout={ERASE_CHECKPOINT_WAIT_MS}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.execute("PRAGMA busy_timeout=10000")
    except sqlite3.Error as exc:
        log.warning("space reclaim after an erase failed (retried on the next): %s", exc)


# ---- jobs: run in the writer thread inside the batch transaction -----------------------

ARCHIVED_AFTER_IN_STREAM = (
    "SELECT 1 FROM erased_links AS l JOIN streams AS s ON s.stream_id = l.stream_id "
    "WHERE l.position > ?1 AND l.stream_id = ?2 AND s.deleted = 0 "
    "AND l.version < s.truncated_before LIMIT 1"
)
ARCHIVED_AFTER = (
    "SELECT 1 FROM erased_links AS l JOIN streams AS s ON s.stream_id = l.stream_id "
    "WHERE l.position > ?1 AND s.deleted = 0 AND l.version < s.truncated_before LIMIT 1"
)
INSERT_EVENTS = (
    "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, "
    "recorded_at, digest, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_HEAD = (
    "INSERT INTO streams (stream_id, head_version, head_position) VALUES (?, ?, ?) "
    "ON CONFLICT (stream_id) DO UPDATE SET head_version = excluded.head_version, "
    "head_position = excluded.head_position"
)
LOOKUP_CHUNK = 500  # bound variables per IN (...) look-up
HEADS_CACHED = 100_000  # streams whose head the writer remembers between transactions


@dataclass(slots=True)
class _Append:
    """An append, as a writer job. Callable like any job (alone, in its own savepoint),
    and recognisable, so consecutive appends in a batch go through `_append_run`."""

    stream_id: str
    events: list[EncodedEvent]
    expected: Expected

    def __call__(self, ctx: BatchContext) -> AppendResult:
        return _append_job(ctx, self.stream_id, self.events, self.expected)


def _isolated(ctx: BatchContext, job: Job) -> Any:
    """Run one job in its own savepoint: its EventStoreError is its outcome and undoes it."""
    conn = ctx.conn
    conn.execute("SAVEPOINT job")
    before = (ctx.last_position, ctx.chain_position, ctx.chain_hash)
    try:
        outcome = job(ctx)
    except (EventStoreError, sqlite3.IntegrityError) as exc:
        conn.execute("ROLLBACK TO job")
        ctx.last_position, ctx.chain_position, ctx.chain_hash = before
        outcome = exc
    conn.execute("RELEASE job")
    return outcome


def _append_run(ctx: BatchContext, run: list[_Append]) -> list[Any]:
    """Consecutive appends of one batch, with the outcomes `_isolated` would give each.

    One SELECT reads the heads of all their streams; each append is checked against
    them in queue order (earlier appends of the run included) and its rows are hashed
    into the chain; one INSERT per table writes them. An append that fails its
    expectation (possibly a retry: that needs the stored ids) goes alone through
    `_isolated` after what precedes it is written; if the INSERT hits a stored event id
    (a retry or a clash), the unwritten rest of the run goes through `_isolated` too.
    """
    conn = ctx.conn
    heads = ctx.heads
    missing = {a.stream_id for a in run if a.stream_id not in heads}
    if missing:
        heads.update(_stream_heads(conn, missing))
    outcomes: list[Any] = []
    written = 0  # appends before this index have their final outcome in `outcomes`
    mark = (ctx.last_position, ctx.chain_position, ctx.chain_hash)
    rows: list[tuple[Any, ...]] = []
    new_heads: dict[str, tuple[int, int]] = {}
    now_us = ctx.now_us
    for index, append in enumerate(run):
        stream_id = append.stream_id
        head, deleted = heads.get(stream_id, (0, False))
        if deleted:
            outcomes.append(StreamDeleted(stream_id))
            continue
        expected = append.expected
        if expected is not ExpectedState.ANY and not _expectation_met(expected, head):
            if not _write_rows(ctx, rows, new_heads, mark):
                return _fallback(ctx, run, outcomes[:written], written)
            outcomes.append(_isolated(ctx, append))  # writes nothing: the head is as read
            written, rows, new_heads = index + 1, [], {}
            mark = (ctx.last_position, ctx.chain_position, ctx.chain_hash)
            continue
        position, version, chain_hash = ctx.last_position, head, ctx.chain_hash
        for e in append.events:
            position += 1
            version += 1
            digest = content_digest(e.data, e.metadata)
            chain_hash = link(
                chain_hash, position, stream_id, version, e.event_id, e.type, now_us, digest
            )
            rows.append(
                (
                    position,
                    stream_id,
                    version,
                    e.event_id,
                    e.type,
                    e.data,
                    e.metadata,
                    now_us,
                    digest,
                    chain_hash,
                )
            )
        heads[stream_id] = (version, False)
        new_heads[stream_id] = (version, position)
        ctx.last_position = ctx.chain_position = position
        ctx.chain_hash = chain_hash
        outcomes.append(AppendResult(stream_id, head + 1, version, position))
    if not _write_rows(ctx, rows, new_heads, mark):
        return _fallback(ctx, run, outcomes[:written], written)
    return outcomes


def _fallback(ctx: BatchContext, run: list[_Append], done: list[Any], start: int) -> list[Any]:
    """The run's appends from `start` on, each alone; the heads cache forgets their streams."""
    for append in run[start:]:
        ctx.heads.pop(append.stream_id, None)
    return done + [_isolated(ctx, a) for a in run[start:]]


def _stream_heads(conn: sqlite3.Connection, streams: set[str]) -> dict[str, tuple[int, bool]]:
    """(head version, deleted) of each stream: (0, False) for one without a row."""
    wanted = list(streams)
    heads = dict.fromkeys(wanted, (0, False))
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        for stream_id, head, deleted in conn.execute(
            "SELECT stream_id, head_version, deleted FROM streams "
            f"WHERE stream_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            heads[stream_id] = (head, bool(deleted))
    return heads


def _write_rows(
    ctx: BatchContext,
    rows: list[tuple[Any, ...]],
    new_heads: dict[str, tuple[int, int]],
    mark: tuple[int, int, bytes],
) -> bool:
    """INSERT the run's rows and stream heads; False (nothing written, the log and chain
    heads back at `mark`) when an event id is already stored.

    No savepoint: SQLite copies every page a savepoint's statements touch into its
    statement journal (measured: +40-70 % on this INSERT). A failed INSERT keeps the rows
    before the failing one, all above `mark`'s position, so deleting those undoes it.
    """
    if not rows:
        return True
    conn = ctx.conn
    try:
        conn.executemany(INSERT_EVENTS, rows)
    except sqlite3.IntegrityError:
        conn.execute("DELETE FROM events WHERE position > ?", (mark[0],))
        ctx.last_position, ctx.chain_position, ctx.chain_hash = mark
        return False
    conn.executemany(UPSERT_HEAD, [(sid, v, p) for sid, (v, p) in new_heads.items()])
    return True


def _append_job(
    ctx: BatchContext, stream_id: str, events: list[EncodedEvent], expected: Expected
) -> AppendResult:
    conn = ctx.conn
    row = conn.execute(
        "SELECT head_version, deleted FROM streams WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    head, deleted = (row[0], bool(row[1])) if row else (0, False)
    if deleted:
        raise StreamDeleted(stream_id)
    if not _expectation_met(expected, head):
        retried = _retry_result(conn, stream_id, events, expected)
        if retried is not None:
            return retried
        raise WrongExpectedVersion(stream_id, expected, head)
    first_position = ctx.last_position + 1
    chain_hash = ctx.chain_hash
    rows = []
    for i, e in enumerate(events):
        position, version = first_position + i, head + 1 + i
        digest = content_digest(e.data, e.metadata)
        chain_hash = link(
            chain_hash, position, stream_id, version, e.event_id, e.type, ctx.now_us, digest
        )
        row = (position, stream_id, version, e.event_id, e.type, e.data, e.metadata, ctx.now_us)
        rows.append((*row, digest, chain_hash))
    conn.execute("SAVEPOINT insert_events")
    try:
        conn.executemany(
            "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, "
            "recorded_at, digest, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    except sqlite3.IntegrityError:
        # An event id is already stored: a retry of an earlier append, or a real clash.
        conn.execute("ROLLBACK TO insert_events")
        conn.execute("RELEASE insert_events")
        retried = _retry_result(conn, stream_id, events, expected)
        if retried is not None:
            return retried
        raise
    conn.execute("RELEASE insert_events")
    last_position = first_position + len(events) - 1
    new_head = head + len(events)
    conn.execute(
        "INSERT INTO streams (stream_id, head_version, head_position) VALUES (?, ?, ?) "
        "ON CONFLICT (stream_id) DO UPDATE SET head_version = excluded.head_version, "
        "head_position = excluded.head_position",
        (stream_id, new_head, last_position),
    )
    ctx.last_position = last_position
    ctx.chain_position, ctx.chain_hash = last_position, chain_hash
    return AppendResult(stream_id, head + 1, new_head, last_position)


def _expectation_met(expected: Expected, head: int) -> bool:
    if expected is ExpectedState.ANY:
        return True
    if expected is ExpectedState.NO_STREAM:
        return head == 0
    if expected is ExpectedState.EXISTS:
        return head > 0
    return head == expected


def _retry_result(
    conn: sqlite3.Connection, stream_id: str, events: list[EncodedEvent], expected: Expected
) -> AppendResult | None:
    ids = [e.event_id for e in events]
    found: dict[str, tuple[str, int, int]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for event_id, sid, version, position in conn.execute(
            f"SELECT event_id, stream_id, version, position FROM events "
            f"WHERE event_id IN ({marks})",
            chunk,
        ):
            found[event_id] = (sid, version, position)
    return resolve_retry(stream_id, ids, expected, found)


def _delete_job(ctx: BatchContext, stream_id: str) -> None:
    conn = ctx.conn
    # The content goes; the links stay, so the chain still verifies across the gap.
    conn.execute(
        "INSERT INTO erased_links (position, stream_id, version, event_id, type, recorded_at, "
        "digest, chain) SELECT position, stream_id, version, event_id, type, recorded_at, "
        "digest, chain FROM events WHERE stream_id = ? AND chain IS NOT NULL",
        (stream_id,),
    )
    erased = conn.execute("DELETE FROM events WHERE stream_id = ?", (stream_id,)).rowcount
    conn.execute(
        "INSERT INTO streams (stream_id, head_version, head_position, deleted, erased_events) "
        "VALUES (?, 0, 0, 1, ?) ON CONFLICT (stream_id) DO UPDATE SET deleted = 1, "
        "erased_events = streams.erased_events + excluded.erased_events",
        (stream_id, erased),
    )
    ctx.erased = ctx.erased or erased > 0


def _archive_job(ctx: BatchContext, stream_id: str, before_version: int, expected: int) -> int:
    conn = ctx.conn
    row = conn.execute(
        "SELECT deleted, truncated_before FROM streams WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    if row is None or row[0]:
        raise InvalidEvent(f"{stream_id}: no live stream to archive")
    conn.execute(
        "INSERT INTO erased_links (position, stream_id, version, event_id, type, recorded_at, "
        "digest, chain) SELECT position, stream_id, version, event_id, type, recorded_at, "
        "digest, chain FROM events WHERE stream_id = ? AND version < ? AND chain IS NOT NULL",
        (stream_id, before_version),
    )
    removed = conn.execute(
        "DELETE FROM events WHERE stream_id = ? AND version < ?", (stream_id, before_version)
    ).rowcount
    if removed != expected:
        raise InvalidEvent(f"{stream_id}: {removed} events below the cut, archived {expected}")
    conn.execute(
        "UPDATE streams SET truncated_before = ? WHERE stream_id = ?",
        (max(before_version, row[1]), stream_id),
    )
    ctx.erased = ctx.erased or removed > 0
    return int(removed)


def _unarchive_job(ctx: BatchContext, stream_id: str, rows: list[tuple[Any, ...]]) -> int:
    conn = ctx.conn
    state = conn.execute("SELECT deleted FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
    if state is None or state[0]:
        raise InvalidEvent(f"{stream_id}: deleted or unknown; its archive cannot come back")
    for position, sid, version, event_id, type_, data, metadata, recorded_at, dig, chain in rows:
        kept = conn.execute(
            "SELECT stream_id, version, event_id, type, recorded_at, digest, chain "
            "FROM erased_links WHERE position = ?",
            (position,),
        ).fetchone()
        if kept is None or tuple(kept) != (sid, version, event_id, type_, recorded_at, dig, chain):
            raise InvalidEvent(f"position {position}: does not match the link the log kept")
        if sid != stream_id or content_digest(data, metadata) != dig:
            raise InvalidEvent(f"position {position}: content differs from its digest")
    conn.executemany(
        "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, "
        "recorded_at, digest, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany("DELETE FROM erased_links WHERE position = ?", [(r[0],) for r in rows])
    conn.execute(
        "UPDATE streams SET truncated_before = COALESCE((SELECT MAX(version) + 1 "
        "FROM erased_links WHERE stream_id = ?), 0) WHERE stream_id = ?",
        (stream_id, stream_id),
    )
    return len(rows)


def _backfill_chain(conn: sqlite3.Connection) -> None:
    """Hash the events of a log written before the chain existed, in position order, once."""
    chain_hash, position = GENESIS, 0
    while True:
        rows = conn.execute(
            "SELECT position, stream_id, version, event_id, type, data, metadata, recorded_at "
            "FROM events WHERE position > ? ORDER BY position LIMIT 5000",
            (position,),
        ).fetchall()
        if not rows:
            break
        updates = []
        for position, stream_id, version, event_id, type_, data, metadata, recorded_at in rows:
            digest = content_digest(bytes(data), None if metadata is None else bytes(metadata))
            chain_hash = link(
                chain_hash, position, stream_id, version, event_id, type_, recorded_at, digest
            )
            updates.append((digest, chain_hash, position))
        conn.executemany("UPDATE events SET digest = ?, chain = ? WHERE position = ?", updates)
    if position:
        conn.execute(
            "UPDATE log_head SET chain_position = ?, chain_hash = ?", (position, chain_hash)
        )
