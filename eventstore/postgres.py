"""The PostgreSQL backend: asyncpg pool, server-side append functions, LISTEN doorbell.

Ordering: every write runs inside one autocommit call of a server function that
takes a transaction-scoped advisory lock, checks the expected version, assigns
`max(position) + 1` and inserts. The lock is released only after the commit is
visible, so positions are gapless and commit-ordered, and a reader tailing with
`position > checkpoint` can never skip an event (postgres.md §2, §4.2).

Group commit, per node: appends that arrive while this node's commit is in flight
queue up and go together in ONE call of `append_batch()` (one round trip, one lock
acquisition, one flush); each keeps its own expected-version check and its own
result. The batches go over the node's own commit connection, not the pool: a pool
connection costs a second round trip per batch (asyncpg resets it on release), and
readers never wait behind a commit for a pool connection. Across nodes the advisory
lock still serialises the batches, so several nodes can append to one log. Every
connection runs with `synchronous_commit=on`: an append is acknowledged only once its
commit is flushed, whatever the server default.

Live updates across processes: one dedicated LISTEN connection rings the
in-process doorbell on each NOTIFY the append function sends; when it is lost it
reconnects with backoff and rings once so subscribers catch up by query. The base
class's poll stays as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

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
from .chain import GENESIS, content_digest
from .pg_schema import (
    APPEND_LOCK_CLASS,
    APPENDED,
    DEFAULT_SCHEMA,
    DELETED,
    DUPLICATE_ID,
    EVENT_ID_CONSTRAINT,
    EXPECT_ANY,
    EXPECT_EXISTS,
    EXPECT_NO_STREAM,
    SchemaNames,
    migrate,
)
from .retry import resolve_retry
from .tail_array import NO_HEAD, PG_TAIL_ARRAY, TailArray, TailCache
from .types import (
    AppendResult,
    ChainHead,
    Checkpoint,
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

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 4
MAX_POOL_SIZE = 64
APPEND_ATTEMPTS = 3
RECONNECT_MAX_SECONDS = 2.0
# One group commit carries at most this many appends / events (at least one append):
# bounds the call's size and how long it holds the lock other nodes wait on.
MAX_BATCH_APPENDS = 512
MAX_BATCH_EVENTS = 10_000
# ... and at most this many bytes of payload: PostgreSQL takes at most 1 GB in one array
# parameter (and one message), and a larger call kills the connection, failing every
# append in it as StoreUnavailable though each was valid alone (two appends of 550
# events of 1 MB did). One append is always taken, whatever its size.
MAX_BATCH_BYTES = 64 * 1024 * 1024
# One append goes in one call whatever its size, so it must fit that 1 GB itself (with
# room for its ids, types and the arrays' own bytes): over it, it was sent, the server
# dropped the connection, and the caller heard StoreUnavailable, for ever on retry.
MAX_APPEND_BYTES = 768 * 1024 * 1024

AppendArgs = tuple[str, int, list[str], list[str], list[bytes], list[bytes | None]]

# Errors that mean "the database cannot take this write now": resources (53: disk
# full, out of memory, too many connections), system/I-O (58), shutdown or start-up
# (57), a lost connection (08), a read-only standby after a failover (25006). asyncpg's
# InternalClientError ("cannot switch to state ...") is what a pool connection killed
# under a query (pg_terminate_backend) raises when the loss races the protocol.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresSystemError,
    asyncpg.OperatorInterventionError,
    asyncpg.PostgresConnectionError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InternalClientError,
    OSError,
)


@contextlib.contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    """Re-raise storage outages as `StoreUnavailable` (the cause kept as `__cause__`)."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


async def pool_fetch(pool: Any, sql: str, *args: Any) -> list[Any]:
    """`pool.fetch`, an outage raised as `StoreUnavailable`: a read whose connection was
    killed answers 503 like a refused write, not a 500 with asyncpg's own exception."""
    with _unavailable_on_outage():
        return list(await pool.fetch(sql, *args))


async def pool_fetchrow(pool: Any, sql: str, *args: Any) -> Any:
    """`pool.fetchrow` with outages as `StoreUnavailable` (see `pool_fetch`)."""
    with _unavailable_on_outage():
        return await pool.fetchrow(sql, *args)


async def pool_execute(pool: Any, sql: str, *args: Any) -> None:
    """`pool.execute` with outages as `StoreUnavailable` (see `pool_fetch`)."""
    with _unavailable_on_outage():
        await pool.execute(sql, *args)


def _storable_types(types: Sequence[str] | None) -> list[str] | None:
    """A read's type filter without types PostgreSQL cannot hold (NUL): those match
    nothing stored, so leaving them out changes no answer (an empty list: none match)."""
    if not types:
        return None
    return [t for t in types if "\x00" not in t]


# Server settings for every connection the store opens.
SERVER_SETTINGS = {"synchronous_commit": "on", "application_name": "hivelog"}

EVENT_COLUMNS = (
    "stream_id, version, position, event_id, type, data, metadata, "
    "(extract(epoch FROM recorded_at) * 1000000)::bigint"
)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _moment(recorded_at_us: int) -> dt.datetime:
    """A stored `recorded_at` from its microseconds (exact: no float on the way)."""
    return EPOCH + dt.timedelta(microseconds=recorded_at_us)


def parse_postgres_url(url: str) -> tuple[str, str, int]:
    """Split hivelog's own query parameters (`schema`, `pool_size`) off a libpq-style URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidEvent(f"not a postgresql:// URL: {url!r}")
    schema = DEFAULT_SCHEMA
    pool_size = DEFAULT_POOL_SIZE
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        elif key == "pool_size":
            if not value.isdigit() or not 1 <= int(value) <= MAX_POOL_SIZE:
                raise InvalidEvent(f"pool_size must be 1..{MAX_POOL_SIZE}, got {value!r}")
            pool_size = int(value)
        else:
            rest.append((key, value))
    dsn = urlunsplit(parts._replace(query=urlencode(rest)))
    return dsn, schema, pool_size


def _expected_code(expected: Expected) -> int:
    if expected is ExpectedState.ANY:
        return EXPECT_ANY
    if expected is ExpectedState.NO_STREAM:
        return EXPECT_NO_STREAM
    if expected is ExpectedState.EXISTS:
        return EXPECT_EXISTS
    assert isinstance(expected, int)
    return expected


@dataclass(slots=True)
class _Waiting:
    """One append queued for the next group commit; `done` gets (status, head, last)."""

    args: AppendArgs
    done: asyncio.Future[tuple[int, int, int]]
    size: int  # payload bytes (data + metadata), for MAX_BATCH_BYTES


async def _init_connection(conn: Any) -> None:
    """Payload columns are `json`: pass the stored bytes through untouched, both ways."""
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary"
    )


class PostgresStore(EventStore):
    """Event store in a PostgreSQL schema. Create with `await PostgresStore.open(url)`."""

    def __init__(self, dsn: str, names: SchemaNames, pool: Any) -> None:
        self.dsn = dsn
        self.names = names
        self.doorbell = Doorbell()
        self.on_commit = []
        self._pool = pool
        self._listener: Any = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0  # how often the LISTEN connection was re-established
        self._waiting: list[_Waiting] = []
        self._committer: asyncio.Task[None] | None = None
        # The group commit's own connection: no pool acquire and no pool reset round trip
        # per batch, and readers never wait behind a commit for a pool connection.
        self._writer: Any = None
        q = names.q
        self._sql_append_batch = (
            f"SELECT statuses, heads, last_positions FROM {q}.append_batch"
            "($1, $2, $3, $4, $5, $6, $7)"
        )
        self._sql_append = (
            f"SELECT status, head, last_position FROM {q}.append_events($1, $2, $3, $4, $5, $6)"
        )
        self._sql_delete = f"SELECT {q}.delete_stream($1)"
        self._sql_found = (
            f"SELECT event_id, stream_id, version, position FROM {q}.events "
            "WHERE event_id = ANY($1::text[])"
        )
        self._sql_head = (
            f"SELECT greatest((SELECT coalesce(max(position), 0) FROM {q}.events), "
            f"erased_up_to) FROM {q}.log_state"
        )
        # A tombstone, else the newest live event, else (a stream archived whole) the cut;
        # each with the stream's archive cut (0: none).
        cut_of = f"coalesce((SELECT truncated_before FROM {q}.stream_cuts WHERE stream_id = $1), 0)"
        self._sql_info = (
            f"SELECT head_version, head_position, true, erased_events, {cut_of} "
            f"FROM {q}.tombstones WHERE stream_id = $1 UNION ALL "
            f"(SELECT version, position, false, 0, {cut_of} FROM {q}.events "
            "WHERE stream_id = $1 ORDER BY version DESC LIMIT 1) UNION ALL "
            f"SELECT truncated_before - 1, cut_position, false, 0, truncated_before "
            f"FROM {q}.stream_cuts WHERE stream_id = $1 LIMIT 1"
        )
        self._sql_tail = (
            f"SELECT {EVENT_COLUMNS} FROM {q}.events WHERE stream_id = $1 "
            "ORDER BY version DESC LIMIT $2"
        )
        self._sql_tail_json = (
            f"SELECT position, version, type, data FROM {q}.events WHERE stream_id = $1 "
            "ORDER BY version DESC LIMIT $2"
        )
        self._sql_read_forward = (
            f"SELECT {EVENT_COLUMNS} FROM {q}.events WHERE stream_id = $1 AND version > $2 "
            "ORDER BY version LIMIT $3"
        )
        self._sql_read_backward = (
            f"SELECT {EVENT_COLUMNS} FROM {q}.events WHERE stream_id = $1 AND version < $2 "
            "ORDER BY version DESC LIMIT $3"
        )
        self._sql_read_all = (
            f"SELECT {EVENT_COLUMNS} FROM {q}.events WHERE position > $1 ORDER BY position LIMIT $2"
        )
        self._sql_read_all_types = (
            f"SELECT {EVENT_COLUMNS} FROM {q}.events WHERE position > $1 "
            "AND type = ANY($3::text[]) ORDER BY position LIMIT $2"
        )
        self._sql_save_checkpoint = (
            f"INSERT INTO {q}.checkpoints (name, position, state, saved_at) "
            "VALUES ($1, $2, $3, now()) ON CONFLICT (name) DO UPDATE SET "
            "position = excluded.position, state = excluded.state, saved_at = excluded.saved_at"
        )
        self._sql_chain_head = (
            f"SELECT position, chain FROM (SELECT position, chain FROM {q}.events "
            "WHERE chain IS NOT NULL ORDER BY position DESC LIMIT 1) AS live UNION ALL "
            f"SELECT position, chain FROM (SELECT position, chain FROM {q}.erased_links "
            "ORDER BY position DESC LIMIT 1) AS gone ORDER BY position DESC LIMIT 1"
        )
        self._sql_load_checkpoint = (
            f"SELECT name, position, state FROM {q}.checkpoints WHERE name = $1"
        )

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        """Connect, create or migrate the schema, and start the LISTEN doorbell."""
        dsn, schema, pool_size = parse_postgres_url(url)
        names = SchemaNames.for_schema(schema)
        conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
        try:
            await migrate(conn, names)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=pool_size,
            init=_init_connection,
            server_settings=SERVER_SETTINGS,
        )
        store = cls(dsn, names, pool)
        try:
            await store._start_listener()
        except BaseException:
            await pool.close()
            raise
        return store

    @property
    def pool(self) -> Any:
        """The asyncpg pool (for operator tools and tests that need raw SQL)."""
        return self._pool

    @property
    def listener_pid(self) -> int | None:
        """Server pid of the LISTEN connection, or None while it is reconnecting."""
        listener = self._listener
        if listener is None or listener.is_closed():
            return None
        return int(listener.get_server_pid())

    # ---- the LISTEN doorbell ---------------------------------------------------------

    async def _start_listener(self) -> None:
        conn = await asyncpg.connect(
            self.dsn, server_settings={**SERVER_SETTINGS, "application_name": "hivelog-listen"}
        )
        try:
            await conn.add_listener(self.names.channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_listener_lost)
        self._listener = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """Append functions NOTIFY their last position (commits run in position order
        under the append lock, so everything up to it is in the log); '0': a delete."""
        head = int(payload) if payload.isdigit() else 0
        self.doorbell.ring(head or None)

    def _on_listener_lost(self, _conn: Any) -> None:
        if self._closed:
            return
        self._listener = None
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(
                self._reconnect(), name="hivelog-pg-listen-reconnect"
            )

    async def _reconnect(self) -> None:
        """Re-LISTEN with backoff; then ring, since NOTIFYs sent meanwhile are gone."""
        delay = 0.05
        while not self._closed:
            try:
                await self._start_listener()
            except Exception as exc:  # keep trying whatever it is; polling covers meanwhile
                log.warning("LISTEN connection lost; retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            if self._closed:
                await self._listener.close()
                return
            self.reconnects += 1
            self.doorbell.ring()
            return

    # ---- writes ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreError("the store is closed")

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected: Expected = ExpectedState.ANY
    ) -> AppendResult:
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected(expected)
        encoded = encode_events(events)
        size = 0
        for e in encoded:  # NUL in a type or id is refused by encode_events (both backends)
            size += len(e.data) + (len(e.metadata) if e.metadata is not None else 0)
        if size > MAX_APPEND_BYTES:
            raise InvalidEvent(
                f"{size} bytes of data and metadata in one append; PostgreSQL takes at most "
                f"{MAX_APPEND_BYTES} in one (split it into several appends)"
            )
        self._check_open()
        ids = [e.event_id for e in encoded]
        args = (
            stream_id,
            _expected_code(expected),
            ids,
            [e.type for e in encoded],
            [e.data for e in encoded],
            [e.metadata for e in encoded],
        )
        for _ in range(APPEND_ATTEMPTS):
            try:
                status, head, last_position = await self._group_commit(args, size)
            except asyncpg.UniqueViolationError as exc:  # from the one-by-one fallback
                if exc.constraint_name != EVENT_ID_CONSTRAINT:
                    raise
                status, head, last_position = DUPLICATE_ID, 0, 0
            if status == APPENDED:
                return AppendResult(stream_id, head + 1, head + len(ids), last_position)
            if status == DELETED:
                raise StreamDeleted(stream_id)
            # An id is already stored (nothing was written): a retry, or a clash.
            retried = await self._retry_result(stream_id, ids, expected)
            if retried is not None:
                return retried
            if status == DUPLICATE_ID:
                continue  # the clashing event was erased meanwhile: try again
            raise WrongExpectedVersion(stream_id, expected, head)
        raise EventStoreError(f"append to {stream_id!r} kept clashing on event ids")

    # ---- group commit ----------------------------------------------------------------

    async def _group_commit(self, args: AppendArgs, size: int) -> tuple[int, int, int]:
        """Queue one append (`size` payload bytes) for this node's next commit and wait
        for its own outcome."""
        done: asyncio.Future[tuple[int, int, int]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(args, done, size))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(
                self._commit_waiting(), name="hivelog-pg-group-commit"
            )
        return await done

    async def _commit_waiting(self) -> None:
        """Commit what is queued, batch after batch, until nothing is left (then end)."""
        while True:
            if not self._waiting:
                # Let the callers just answered run first: those that append again at once
                # join the next batch instead of starting a new committer.
                await asyncio.sleep(0)
                if not self._waiting:
                    return
            # A caller that gave up before its append was sent gets nothing written.
            self._waiting = [w for w in self._waiting if not w.done.cancelled()]
            take, events, size = 0, 0, 0
            for waiting in self._waiting:
                if take and (
                    take >= MAX_BATCH_APPENDS
                    or events + len(waiting.args[2]) > MAX_BATCH_EVENTS
                    or size + waiting.size > MAX_BATCH_BYTES
                ):
                    break
                take += 1
                events += len(waiting.args[2])
                size += waiting.size
            batch, self._waiting = self._waiting[:take], self._waiting[take:]
            if batch:
                await self._commit_batch(batch)

    async def _writer_connection(self) -> Any:
        """The group commit's connection, (re)connected when missing or lost."""
        writer = self._writer
        if writer is None or writer.is_closed():
            self._writer = None
            writer = await asyncpg.connect(
                self.dsn,
                server_settings={**SERVER_SETTINGS, "application_name": "hivelog-commit"},
            )
            await _init_connection(writer)
            self._writer = writer
        return writer

    def _drop_writer(self) -> None:
        """Forget the commit connection after a failure it may not survive (reconnect next)."""
        writer, self._writer = self._writer, None
        if writer is not None and not writer.is_closed():
            writer.terminate()

    async def _commit_batch(self, batch: list[_Waiting]) -> None:
        """One call of append_batch(); every waiter gets its own result or error."""
        started = time.perf_counter()
        streams, expected, counts = [], [], []
        ids: list[str] = []
        types: list[str] = []
        data: list[bytes] = []
        metadata: list[bytes | None] = []
        for waiting in batch:
            stream_id, code, w_ids, w_types, w_data, w_meta = waiting.args
            streams.append(stream_id)
            expected.append(code)
            counts.append(len(w_ids))
            ids += w_ids
            types += w_types
            data += w_data
            metadata += w_meta
        try:
            with _unavailable_on_outage():
                writer = await self._writer_connection()
                statuses, heads, lasts = await writer.fetchrow(
                    self._sql_append_batch, streams, expected, counts, ids, types, data, metadata
                )
        except StoreUnavailable as exc:
            self._drop_writer()
            for waiting in batch:
                _settle(waiting.done, error=exc)
            return
        except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # The commit connection broke under the call (killed, or asyncpg found it
            # mid-operation after a loss it had not yet noticed): an outage, like the above.
            self._drop_writer()
            lost = StoreUnavailable(f"PostgreSQL commit connection lost: {exc!r}")
            for waiting in batch:
                _settle(waiting.done, error=lost)
            return
        except asyncpg.PostgresError:
            # Unexpected for a batch (nothing was written): commit one by one instead, so
            # whatever the cause is fails only the append that carries it.
            await self._commit_one_by_one(batch)
            return
        except BaseException as exc:  # cancelled (closing) or a bug: nobody waits forever
            self._drop_writer()
            for waiting in batch:
                _settle(waiting.done, error=EventStoreError(f"group commit failed: {exc!r}"))
            raise
        appended = statuses.count(APPENDED)
        if appended:
            self._notify_commit(appended, time.perf_counter() - started)
            self.doorbell.ring(
                max(
                    last for status, last in zip(statuses, lasts, strict=True) if status == APPENDED
                )
            )
        for waiting, status, head, last in zip(batch, statuses, heads, lasts, strict=True):
            _settle(waiting.done, result=(status, head, last))

    async def _commit_one_by_one(self, batch: list[_Waiting]) -> None:
        """The fallback: one append_events() call per append, each with its own outcome."""
        for waiting in batch:
            started = time.perf_counter()
            try:
                with _unavailable_on_outage():
                    row = await self._pool.fetchrow(self._sql_append, *waiting.args)
            except Exception as exc:
                _settle(waiting.done, error=exc)
                continue
            if row[0] == APPENDED:
                self._notify_commit(1, time.perf_counter() - started)
                self.doorbell.ring(row[2])
            _settle(waiting.done, result=(row[0], row[1], row[2]))

    async def _retry_result(
        self, stream_id: str, ids: list[str], expected: Expected
    ) -> AppendResult | None:
        """Stored ids never change place (only erasure removes them), so no lock is needed."""
        rows = await pool_fetch(self._pool, self._sql_found, ids)
        found = {r[0]: (r[1], r[2], r[3]) for r in rows}
        return resolve_retry(stream_id, ids, expected, found)

    async def delete_stream(self, stream_id: str) -> None:
        stream_id = validate_stream_id(stream_id)
        self._check_open()
        await pool_execute(self._pool, self._sql_delete, stream_id)
        self.doorbell.ring()

    async def save_checkpoint(self, name: str, position: int, state: bytes) -> None:
        name = validate_checkpoint_name(name)  # NUL refused there, for both backends
        validate_count("position", position)
        if not isinstance(state, bytes):
            raise InvalidEvent("checkpoint state must be bytes")
        self._check_open()
        await pool_execute(self._pool, self._sql_save_checkpoint, name, position, state)

    # ---- reads -----------------------------------------------------------------------

    async def _events(self, sql: str, *args: Any) -> list[RecordedEvent]:
        return list(map(RecordedEvent._make, await pool_fetch(self._pool, sql, *args)))

    async def tail(self, stream_id: str, n: int) -> TailPage:
        stream_id = validate_stream_id(stream_id)
        validate_count("n", n)
        newest = await self._events(self._sql_tail, stream_id, n)
        newest.reverse()
        return TailPage(newest, await self._total(stream_id, newest))

    async def tail_json(self, stream_id: str, n: int) -> JsonTailPage:
        stream_id = validate_stream_id(stream_id)
        validate_count("n", n)
        rows = await pool_fetch(self._pool, self._sql_tail_json, stream_id, n)
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
        if backwards:
            upper = after_version if after_version > 0 else 2**62
            events = await self._events(self._sql_read_backward, stream_id, upper, limit)
        else:
            events = await self._events(self._sql_read_forward, stream_id, after_version, limit)
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
        where = ["stream_id = $1"]
        args: list[Any] = [stream_id]
        if after_position is not None:
            args.append(after_position)
            where.append(f"position > ${len(args)}")
        if before_position is not None:
            args.append(before_position)
            where.append(f"position < ${len(args)}")
        wanted = _storable_types(types)
        if wanted is not None:
            args.append(wanted)
            where.append(f"type = ANY(${len(args)}::text[])")
        args.append(limit)
        order = "DESC" if newest_first else "ASC"
        events = await self._events(
            f"SELECT {EVENT_COLUMNS} FROM {self.names.q}.events WHERE {' AND '.join(where)} "
            f"ORDER BY position {order} LIMIT ${len(args)}",
            *args,
        )
        if not events:
            await self._raise_if_deleted(stream_id)
        return events

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        validate_count("after_position", after_position)
        validate_count("limit", limit)
        wanted = _storable_types(types)
        if wanted is not None:
            return await self._events(self._sql_read_all_types, after_position, limit, wanted)
        return await self._events(self._sql_read_all, after_position, limit)

    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        stream_id = validate_stream_id(stream_id)
        row = await pool_fetchrow(self._pool, self._sql_info, stream_id)
        if row is None:
            return None
        head, head_position, deleted, erased, cut = row
        return StreamInfo(stream_id, head, head_position, deleted, erased, cut)

    async def tail_array(self, stream_id: str, n: int) -> TailArray:
        """The newest `n` events spliced into one JSON array by PostgreSQL (string_agg),
        with the stream's head row: one statement, no per-row objects (tail_array.py)."""
        stream_id = validate_stream_id(stream_id)
        validate_count("n", n)
        cache, sql = self._tail_array_parts()
        cached = cache.lookup(stream_id, n)
        head = cached.head if cached is not None else NO_HEAD
        row = await pool_fetchrow(self._pool, sql, stream_id, n, *head)
        return cache.finish(stream_id, n, tuple(row), cached)

    def _tail_array_parts(self) -> tuple[TailCache, str]:
        """The store's page cache and statement, made on first use (reads only)."""
        parts: tuple[TailCache, str] | None = getattr(self, "_tail_array_state", None)
        if parts is None:
            parts = (TailCache(), PG_TAIL_ARRAY.format(q=self.names.q))
            self._tail_array_state = parts
        return parts

    async def archived_after(self, after_position: int, stream_id: str | None = None) -> bool:
        """An archived link past `after_position`: of `stream_id` (below its cut), else of
        any stream not erased (an erased session's links are not archived events)."""
        await super().archived_after(after_position, stream_id)
        q = self.names.q
        sql = (
            f"SELECT 1 FROM {q}.erased_links AS l JOIN {q}.stream_cuts AS c "
            "ON c.stream_id = l.stream_id WHERE l.position > $1 "
            "AND l.version < c.truncated_before AND NOT EXISTS "
            f"(SELECT 1 FROM {q}.tombstones AS t WHERE t.stream_id = l.stream_id)"
        )
        if stream_id is not None:
            row = await pool_fetchrow(
                self._pool, sql + " AND l.stream_id = $2 LIMIT 1", after_position, stream_id
            )
        else:
            row = await pool_fetchrow(self._pool, sql + " LIMIT 1", after_position)
        return row is not None

    # ---- archiving (truncate-before; tools/archive.py), as SQLiteStore's --------------

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
        q = self.names.q
        args: list[Any] = [max_position, recorded_before_us or 0]
        where = ""
        if stream_id is not None:
            args.append(validate_stream_id(stream_id))
            where = "AND e.stream_id = $3 "
        rows = await pool_fetch(
            self._pool,
            "SELECT e.stream_id, max(e.version), min(e.version), "
            "max(e.version) FILTER (WHERE e.position <= $1), "
            "max(e.version) FILTER (WHERE "
            "(extract(epoch FROM e.recorded_at) * 1000000)::bigint < $2) "
            f"FROM {q}.events AS e WHERE e.stream_id NOT LIKE '$%' {where}"
            f"AND NOT EXISTS (SELECT 1 FROM {q}.tombstones AS t "
            "WHERE t.stream_id = e.stream_id) "
            'GROUP BY e.stream_id ORDER BY e.stream_id COLLATE "C"',
            *args,
        )
        return plan_cuts(rows, recorded_before_us, keep_last)

    async def archive_rows(self, stream_id: str, before_version: int) -> list[tuple[Any, ...]]:
        """The live events below the cut with their digest and link (backup row order)."""
        return await pool_fetch(
            self._pool,
            "SELECT position, stream_id, version, event_id, type, data, metadata, "
            "(extract(epoch FROM recorded_at) * 1000000)::bigint, digest, chain "
            f"FROM {self.names.q}.events WHERE stream_id = $1 AND version < $2 ORDER BY version",
            validate_stream_id(stream_id),
            before_version,
        )

    async def archive_before(self, stream_id: str, before_version: int, expected: int) -> int:
        """Remove a stream's versions below `before_version` in one transaction under the
        append lock, keeping their links in erased_links; refuses (nothing changes) unless
        exactly `expected` events go. Versions, positions and the head never change: the
        log's top position is kept in `erased_up_to` (as an erase does), and a stream
        archived whole keeps its head through its cut row."""
        stream_id = validate_stream_id(stream_id)
        q = self.names.q
        async with self._locked() as conn:
            old_cut = await self._live_cut(conn, stream_id, "no live stream to archive")
            await conn.execute(
                f"UPDATE {q}.log_state SET erased_up_to = m.top FROM (SELECT "
                f"max(position) AS top FROM {q}.events) AS m WHERE m.top > erased_up_to"
            )
            await conn.execute(
                f"INSERT INTO {q}.erased_links (position, stream_id, version, event_id, "
                "type, recorded_at_us, digest, chain) SELECT position, stream_id, version, "
                "event_id, type, (extract(epoch FROM recorded_at) * 1000000)::bigint, "
                f"digest, chain FROM {q}.events WHERE stream_id = $1 AND version < $2 "
                "AND chain IS NOT NULL",
                stream_id,
                before_version,
            )
            status = await conn.execute(
                f"DELETE FROM {q}.events WHERE stream_id = $1 AND version < $2",
                stream_id,
                before_version,
            )
            removed = int(status.split()[-1])
            if removed != expected:
                raise InvalidEvent(
                    f"{stream_id}: {removed} events below the cut, archived {expected}"
                )
            if before_version > old_cut:
                await self._set_cut(conn, stream_id, before_version)
        return removed

    async def restore_archived(self, stream_id: str, rows: list[tuple[Any, ...]]) -> int:
        """Put archived rows back, each checked against the link it left behind, in one
        transaction under the append lock; the cut moves down to what is still archived."""
        stream_id = validate_stream_id(stream_id)
        q = self.names.q
        async with self._locked() as conn:
            why = "deleted or unknown; its archive cannot come back"
            await self._live_cut(conn, stream_id, why)
            kept = {
                r[0]: tuple(r[1:])
                for r in await conn.fetch(
                    "SELECT position, stream_id, version, event_id, type, recorded_at_us, "
                    f"digest, chain FROM {q}.erased_links WHERE position = ANY($1::bigint[])",
                    [r[0] for r in rows],
                )
            }
            for position, sid, version, event_id, type_, data, meta, rec_us, dig, chain in rows:
                link = (sid, version, event_id, type_, rec_us, dig, chain)
                if kept.get(position) != link:
                    raise InvalidEvent(f"position {position}: does not match the link the log kept")
                if sid != stream_id or content_digest(data, meta) != dig:
                    raise InvalidEvent(f"position {position}: content differs from its digest")
            await conn.executemany(
                f"INSERT INTO {q}.events (position, stream_id, version, event_id, type, "
                "data, metadata, recorded_at, digest, chain) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [(*r[:7], _moment(r[7]), *r[8:]) for r in rows],
            )
            await conn.execute(
                f"DELETE FROM {q}.erased_links WHERE position = ANY($1::bigint[])",
                [r[0] for r in rows],
            )
            still = await conn.fetchval(
                f"SELECT max(version) + 1 FROM {q}.erased_links WHERE stream_id = $1",
                stream_id,
            )
            await conn.execute(f"DELETE FROM {q}.stream_cuts WHERE stream_id = $1", stream_id)
            if still is not None and still > 1:
                await self._set_cut(conn, stream_id, int(still))
        return len(rows)

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[Any]:
        """A pool connection in a transaction holding the append lock (appends and erases
        wait for the cut or restore); an outage is StoreUnavailable."""
        self._check_open()
        with _unavailable_on_outage():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", APPEND_LOCK_CLASS, self.names.lock_key
                )
                yield conn

    async def _live_cut(self, conn: Any, stream_id: str, why: str) -> int:
        """The cut of a live stream (0: none); InvalidEvent(`why`) for an erased or
        unknown one (no events and no cut)."""
        q = self.names.q
        row = await conn.fetchrow(
            f"SELECT EXISTS (SELECT 1 FROM {q}.tombstones WHERE stream_id = $1), "
            f"EXISTS (SELECT 1 FROM {q}.events WHERE stream_id = $1), "
            f"(SELECT truncated_before FROM {q}.stream_cuts WHERE stream_id = $1)",
            stream_id,
        )
        erased, live, cut = row
        if erased or (not live and cut is None):
            raise InvalidEvent(f"{stream_id}: {why}")
        return int(cut or 0)

    async def _set_cut(self, conn: Any, stream_id: str, cut: int) -> None:
        """Record the cut with the position of its last archived version (the head of a
        stream archived whole), read from that version's kept link."""
        q = self.names.q
        await conn.execute(
            f"INSERT INTO {q}.stream_cuts (stream_id, truncated_before, cut_position) "
            f"SELECT $1, $2::bigint, coalesce((SELECT position FROM {q}.erased_links "
            "WHERE stream_id = $1 AND version = $2::bigint - 1), 0) "
            "ON CONFLICT (stream_id) DO UPDATE SET truncated_before = excluded.truncated_before, "
            "cut_position = excluded.cut_position",
            stream_id,
            cut,
        )

    async def head_position(self) -> int:
        return int((await pool_fetchrow(self._pool, self._sql_head))[0])

    async def chain_head(self) -> ChainHead:
        """The newest link: of the newest event, or of an erased one if that came later."""
        row = await pool_fetchrow(self._pool, self._sql_chain_head)
        if row is None:
            return ChainHead(0, GENESIS)
        return ChainHead(int(row[0]), bytes(row[1]))

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        name = validate_checkpoint_name(name)
        row = await pool_fetchrow(self._pool, self._sql_load_checkpoint, name)
        if row is None:
            return None
        return Checkpoint(row[0], row[1], bytes(row[2]))

    async def _close(self) -> None:
        """Wait for in-flight calls to release their connections, then disconnect."""
        committer = self._committer
        if committer is not None and not committer.done():
            with contextlib.suppress(Exception):
                await committer  # appends already queued are committed and answered
        if self._leases is not None:
            await self._leases.settle()  # no claim task outlives the pool
        writer, self._writer = self._writer, None
        if writer is not None and not writer.is_closed():
            try:
                await writer.close(timeout=5)
            except Exception:  # a broken connection: just drop it
                writer.terminate()
        task = self._reconnect_task
        if task is not None and not task.done():
            # Cancel until done, bounded (5 s): on Python 3.11 a cancel landing as an
            # awaited wait completes can be swallowed, and one cancel then hangs close().
            for _ in range(200):
                task.cancel()
                done, _pending = await asyncio.wait({task}, timeout=0.025)
                if done:
                    break
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failed reconnect was already logged
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            await listener.close()
        await self._pool.close()


def _settle(
    done: asyncio.Future[tuple[int, int, int]],
    result: tuple[int, int, int] | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer a waiter unless it gave up (cancelled) meanwhile."""
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        assert result is not None
        done.set_result(result)
