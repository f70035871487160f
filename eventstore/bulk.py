"""Writing a whole log into an empty store as it was: positions, versions, links, heads.

`append` assigns positions, times and chain links; a restore must not, or the copy
would not be the log that was backed up (and its chain head would differ). So the
loader writes the tables directly, in one transaction, after `open_store` has
created or migrated the schema; PostgreSQL takes the append lock first, so no
append can interleave. Leases are not restored: they are short-lived ownership of
work, not history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import struct
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .base import validate_stream_id
from .chain import DOMAIN, GENESIS, content_digest
from .factory import open_store
from .types import (
    EPOCH,
    MAX_EVENT_BYTES,
    MAX_EVENT_ID_LENGTH,
    MAX_EVENTS_PER_APPEND,
    MAX_TYPE_LENGTH,
    Expected,
    ExpectedState,
    InvalidEvent,
    NewEvent,
)


@dataclass(frozen=True, slots=True)
class LogTail:
    """What the log head rows say after a restore."""

    head_position: int
    chain_position: int
    chain_hash: bytes | None


EVENT_COLUMNS = [
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "data",
    "metadata",
    "recorded_at",
    "digest",
    "chain",
]

# Rows as the backup format yields them (see tools/keep_format.py):
# event: (position, stream_id, version, event_id, type, data, metadata, recorded_at_us,
#         digest, chain); link: (position, stream_id, version, event_id, type,
#         recorded_at_us, digest, chain); stream: (stream_id, head_version, head_position,
#         deleted, erased_events[, truncated_before]); checkpoint: (name, position, state).
Row = Sequence[Any]

# Consumer groups are not in a backup (their state is the target's). A group that was
# past the restored head would never deliver the events appended after the restore at
# positions up to its cursor, and its deliveries there name events the log no longer
# has: the cursor comes back to the head and those deliveries go (with the load).
GROUPS_BACK_TO_HEAD = (
    "DELETE FROM {q}subscription_deliveries WHERE position > {p}",
    "UPDATE {q}subscription_groups SET cursor = {p} WHERE cursor > {p}",
)


class Loader(Protocol):
    async def is_empty(self) -> bool: ...
    async def wipe(self) -> None: ...
    async def load(
        self,
        events: AsyncIterator[list[Row]],
        links: list[Row],
        streams: list[Row],
        checkpoints: list[Row],
        tail: LogTail,
        *,
        wipe: bool = False,
    ) -> None: ...
    async def close(self) -> None: ...


async def open_loader(url: str) -> Loader:
    """Create or migrate the target's schema (through the store), then load it directly."""
    store = await open_store(url)
    await store.close()
    if url.startswith("sqlite:"):
        from .sqlite import sqlite_path_from_url

        return SQLiteLoader(sqlite_path_from_url(url))
    return await PostgresLoader.connect(url)


class SQLiteLoader:
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.execute("PRAGMA synchronous=FULL")

    async def is_empty(self) -> bool:
        c = self.conn
        return not (
            c.execute("SELECT last_position FROM log_head").fetchone()[0]
            or c.execute("SELECT 1 FROM streams LIMIT 1").fetchone()
            or c.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchone()
        )

    async def wipe(self) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        self._wipe_tables()
        c.execute("COMMIT")

    def _wipe_tables(self) -> None:
        c = self.conn
        for table in ("events", "erased_links", "streams", "checkpoints", "leases"):
            c.execute(f"DELETE FROM {table}")
        c.execute("UPDATE log_head SET last_position = 0, chain_position = 0, chain_hash = NULL")

    async def load(
        self,
        events: AsyncIterator[list[Row]],
        links: list[Row],
        streams: list[Row],
        checkpoints: list[Row],
        tail: LogTail,
        *,
        wipe: bool = False,
    ) -> None:
        """All in one transaction; `wipe` empties the log first inside it, so a load that
        fails (or is killed) leaves the log that was there."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if wipe:
                self._wipe_tables()
            async for batch in events:
                c.executemany(
                    "INSERT INTO events (position, stream_id, version, event_id, type, data, "
                    "metadata, recorded_at, digest, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch,
                )
            c.executemany(
                "INSERT INTO erased_links (position, stream_id, version, event_id, type, "
                "recorded_at, digest, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                links,
            )
            c.executemany(
                "INSERT INTO streams (stream_id, head_version, head_position, deleted, "
                "erased_events) VALUES (?, ?, ?, ?, ?)",
                [(s[0], s[1], s[2], int(bool(s[3])), s[4]) for s in streams],
            )
            c.executemany(  # archive cuts (hivelog archive), when the backup has them
                "UPDATE streams SET truncated_before = ? WHERE stream_id = ?",
                [(s[5], s[0]) for s in streams if len(s) > 5 and s[5]],
            )
            c.executemany(
                "INSERT INTO checkpoints (name, position, state, saved_at) VALUES (?, ?, ?, 0)",
                checkpoints,
            )
            c.execute(
                "UPDATE log_head SET last_position = ?, chain_position = ?, chain_hash = ?",
                (tail.head_position, tail.chain_position, tail.chain_hash),
            )
            for sql in GROUPS_BACK_TO_HEAD:
                c.execute(sql.format(q="", p="?1"), (tail.head_position,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        self.conn.close()


def _moment(recorded_at_us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=recorded_at_us)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else bytes(value).decode()


class PostgresLoader:
    def __init__(self, conn: Any, schema: str, lock: tuple[int, int]) -> None:
        self.conn = conn
        self.schema = schema
        self.q = f'"{schema}"'
        self.lock = lock

    @classmethod
    async def connect(cls, url: str) -> PostgresLoader:
        import asyncpg

        from .pg_schema import APPEND_LOCK_CLASS, SchemaNames
        from .postgres import parse_postgres_url

        dsn, schema, _ = parse_postgres_url(url)
        names = SchemaNames.for_schema(schema)
        conn = await asyncpg.connect(dsn)
        return cls(conn, schema, (APPEND_LOCK_CLASS, names.lock_key))

    async def is_empty(self) -> bool:
        q = self.q
        found = await self.conn.fetchval(
            f"SELECT (SELECT count(*) FROM (SELECT 1 FROM {q}.events LIMIT 1) e) + "
            f"(SELECT count(*) FROM {q}.tombstones) + (SELECT count(*) FROM {q}.checkpoints) + "
            f"(SELECT erased_up_to FROM {q}.log_state)"
        )
        return not found

    async def wipe(self) -> None:
        async with self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *self.lock)
            await self._wipe_tables()

    async def _wipe_tables(self) -> None:
        q = self.q
        for table in (
            "events",
            "erased_links",
            "tombstones",
            "stream_cuts",
            "checkpoints",
            "leases",
        ):
            await self.conn.execute(f"DELETE FROM {q}.{table}")
        await self.conn.execute(f"UPDATE {q}.log_state SET erased_up_to = 0")

    async def load(
        self,
        events: AsyncIterator[list[Row]],
        links: list[Row],
        streams: list[Row],
        checkpoints: list[Row],
        tail: LogTail,
        *,
        wipe: bool = False,
    ) -> None:
        """All in one transaction under the append lock; `wipe` empties the log first
        inside it, so a load that fails leaves the log that was there."""
        conn, q = self.conn, self.q
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = on")
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *self.lock)
            if wipe:
                await self._wipe_tables()
            async for batch in events:
                await conn.copy_records_to_table(
                    "events",
                    schema_name=self.schema,
                    columns=EVENT_COLUMNS,
                    records=[
                        (p, s, v, i, t, _text(d), _text(m), _moment(r), g, h)
                        for p, s, v, i, t, d, m, r, g, h in batch
                    ],
                )
            await conn.executemany(
                f"INSERT INTO {q}.erased_links (position, stream_id, version, event_id, type, "
                "recorded_at_us, digest, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [tuple(link) for link in links],
            )
            await conn.executemany(
                f"INSERT INTO {q}.tombstones (stream_id, head_version, head_position, "
                "erased_events, deleted_at) VALUES ($1, $2, $3, $4, now())",
                [(s[0], s[1], s[2], s[4]) for s in streams if s[3]],
            )
            # Archive cuts (hivelog archive), with the position of the last archived version
            # from its kept link (the head of a stream archived whole; postgres.py).
            await conn.executemany(
                f"INSERT INTO {q}.stream_cuts (stream_id, truncated_before, cut_position) "
                f"SELECT $1, $2::bigint, coalesce((SELECT position FROM {q}.erased_links "
                "WHERE stream_id = $1 AND version = $2::bigint - 1), 0)",
                [(s[0], s[5]) for s in streams if len(s) > 5 and s[5] > 1],
            )
            await conn.executemany(
                f"INSERT INTO {q}.checkpoints (name, position, state, saved_at) "
                "VALUES ($1, $2, $3, now())",
                [tuple(c) for c in checkpoints],
            )
            # The chain head on PostgreSQL is the newest link itself (no head row).
            await conn.execute(f"UPDATE {q}.log_state SET erased_up_to = $1", tail.head_position)
            for sql in GROUPS_BACK_TO_HEAD:
                await conn.execute(sql.format(q=f"{q}.", p="$1"), tail.head_position)

    async def close(self) -> None:
        await self.conn.close()


# ---- appending many streams' events in one transaction (hivelog import-hive) -------------

BULK_CACHE_KIB = 256 * 1024  # the event-id index of a big import stays in memory
# A load (`begin_load`) defers the events indexes whose first column is this one: import
# ids are uuid5 of file and line, so each row's key lands on a random index page. The
# stream indexes get their keys in order within each session; they stay maintained row
# by row (measured: deferring them too saved no CPU and lengthened the final build).
RANDOM_KEY = "event_id"
_U64 = struct.Struct(">q")  # eventstore.chain's u64


@dataclass(frozen=True, slots=True)
class BulkAppend:
    """One append as `EventStore.append` takes it: encoded events, an expected version."""

    stream_id: str
    events: Sequence[NewEvent]  # data and metadata already JSON bytes, ids set
    expected: Expected
    # each event's `eventstore.chain.content_digest`, when the caller computed them
    # already (import-hive's parsing process does, beside the writing); else computed here
    digests: Sequence[bytes] | None = None

    def new_events(self) -> Sequence[NewEvent]:
        """The events, for `EventStore.append` (if the appender left this append)."""
        return self.events


# One encoded event as import-hive's parsing process sends it: (event id, type, data
# as JSON bytes, metadata as JSON bytes or None, its `eventstore.chain.content_digest`).
EventRow = tuple[str, str, bytes, "bytes | None", bytes]


@dataclass(frozen=True, slots=True)
class BulkRows:
    """One append of events as rows (`EventRow`): what `BulkAppend` says, without a
    `NewEvent` per event (building one cost as much as half of writing its row)."""

    stream_id: str
    rows: Sequence[EventRow]
    expected: Expected

    def new_events(self) -> list[NewEvent]:
        """The events, for `EventStore.append` (if the appender left this append)."""
        return [NewEvent(kind, data, metadata, event_id) for event_id, kind, data, metadata, _
                in self.rows]  # fmt: skip


class SQLiteBulkAppender:
    """Appends for many streams in one transaction on its own connection, exactly as the
    store's appends would write them (positions, versions, digests, chain links, stream
    heads, the log head), for a tool that appends a lot at once (`hivelog import-hive`).

    One transaction per call: one fsync for many streams, and a large page cache so the
    random event-id index is not re-read from disk for every row. It handles only the
    plain case; `append_many` says which appends it did not do (an expected version not
    met, a deleted stream, an event id already stored, anything unusual), and the caller
    gives exactly those to `EventStore.append`, which decides and words the outcome as
    it always does. Call it from one thread at a time.
    """

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        self.conn.execute("PRAGMA temp_store=MEMORY")  # the index build's sort
        # A load (`begin_load`): the definitions of the indexes it dropped until
        # `finish_load` builds them again, and the hashes of the event ids it wrote.
        self._rebuild: list[str] | None = None
        self._loaded: set[int] = set()
        self._wal_path = f"{path}-wal"
        # a load in a rollback journal (`begin_load(own_file=True)`): the file is the
        # load's alone until `finish_load` puts it back into WAL mode
        self._journal = False

    @property
    def loading(self) -> bool:
        return self._rebuild is not None

    def begin_load(self, *, own_file: bool = False) -> bool:
        """Start a load, if the log is empty: one transaction until `finish_load`, with
        the index on event ids (RANDOM_KEY) dropped and built once at the end from
        sorted keys; SQLite maintaining it row by row, a random page per row, rewritten
        at every commit, cost most of a big import's writing.

        Only into an empty log: every event id the load writes is then one it wrote
        itself, so its own check (`_clashes`) keeps ids unique until the unique index
        is back (and the build checks every row once more), and the build reads only
        what the load wrote. The drop, the rows and the build are one transaction: a
        crash, a kill or an error anywhere leaves the log as it was (indexes and all),
        and other connections never see it without its index. The index is rebuilt
        from its own stored definition (`sqlite_master`), so the schema
        (eventstore/sqlite.py) stays its one source. The write lock is held for the
        whole load: other writers wait, so no load while a lease on the log is live
        (a service is running on it). False (nothing started) if the log is not
        empty or in use.

        `own_file`: the caller has no other connection open on the file. The load then
        runs in a rollback journal with the file locked for it alone (`_own_file`): the
        pages go into the file once, instead of into the WAL and again into the file at
        the final checkpoint. If another connection has the file open, the load runs
        in the WAL as without it."""
        c = self.conn
        self._journal = own_file and self._own_file()
        try:
            c.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._back_to_wal()
            raise
        try:
            empty = (
                c.execute("SELECT last_position FROM log_head").fetchone()[0] == 0
                and c.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None
                and c.execute("SELECT 1 FROM streams LIMIT 1").fetchone() is None
            )
            # A running service holds leases (its node's liveness, renewed every few
            # seconds): its writes would wait for the whole load and time out, so
            # while one is live the import commits group by group instead.
            in_use = c.execute(
                "SELECT 1 FROM leases WHERE expires_at > ? LIMIT 1", (time.time(),)
            ).fetchone()
            if not empty or in_use is not None:
                c.execute("ROLLBACK")
                self._back_to_wal()
                return False
            indexes = c.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'events' AND sql IS NOT NULL ORDER BY name"
            ).fetchall()
            indexes = [
                (name, sql)
                for name, sql in indexes
                if c.execute(f'PRAGMA index_info("{name}")').fetchone()[2] == RANDOM_KEY
            ]
            for name, _ in indexes:
                c.execute(f'DROP INDEX "{name}"')
        except BaseException:
            self._abandon_load()
            raise
        self._rebuild = [sql for _, sql in indexes]
        self._loaded = set()
        return True

    def finish_load(self) -> None:
        """Build the dropped indexes (the unique ones check every row once more) and
        commit the load. Any failure rolls the whole load back and is raised."""
        rebuild = self._rebuild
        if rebuild is None:
            return
        c = self.conn
        self._rebuild, self._loaded = None, set()
        try:
            for sql in rebuild:
                c.execute(sql)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        finally:
            self._back_to_wal()

    @property
    def journal(self) -> bool:
        """Whether the load runs in a rollback journal (the file is its alone)."""
        return self._journal

    def _own_file(self) -> bool:
        """Lock the file for this connection alone (`locking_mode=EXCLUSIVE`: once taken,
        the lock is kept until `_back_to_wal`) and leave WAL mode for a rollback journal:
        a load's new pages are written straight into the file (only the few pages the
        empty log had go to the journal). A crash or kill mid-load leaves a hot journal,
        which the next connection that opens the file rolls back (SQLite's own
        recovery; a read-only one cannot, and refuses the file until then), and the
        store puts the file back into WAL mode when it opens it. So import-hive uses it
        only for a file no one else opens: a new log built beside its path
        (tools/import_beside.py), dropped if the import does not finish.
        False, and WAL mode as before, if another connection has the file open (leaving
        WAL mode needs the file alone: SQLite refuses it then, and it is not waited for).
        `synchronous=EXTRA`: in DELETE mode the commit is the journal's unlinking, so its
        folder is synced too (FULL does not), or a power loss could bring it back."""
        c = self.conn
        c.execute("PRAGMA busy_timeout=0")
        c.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            mode = c.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        except sqlite3.OperationalError:  # locked: another connection has the file open
            mode = None
        finally:
            c.execute("PRAGMA busy_timeout=10000")
        if mode != "delete":
            self._journal = True  # so that `_back_to_wal` releases the lock
            self._back_to_wal()
            return False
        c.execute("PRAGMA synchronous=EXTRA")
        return True

    def _back_to_wal(self) -> None:
        """After a load in a rollback journal: WAL mode again and the lock released
        (`locking_mode=NORMAL` releases it at the next access, the mode change). If the
        change fails (another connection got in after the commit), the file stays in
        rollback mode until the store opens it (it sets WAL mode on every open)."""
        if not self._journal:
            return
        self._journal = False
        c = self.conn
        c.execute("PRAGMA locking_mode=NORMAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA busy_timeout=0")
        try:
            c.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError:
            pass
        finally:
            c.execute("PRAGMA busy_timeout=10000")
        c.execute("SELECT 1 FROM log_head").fetchone()  # an access: the lock goes

    def append_many(self, appends: Sequence[BulkAppend | BulkRows]) -> list[int]:
        """Write every append it can in one transaction; the indexes of those it left
        (in order) for `EventStore.append`. All or nothing: if a row is refused, nothing
        is written and every index is returned.

        During a load the rows join the load's transaction instead; if any append is
        left, the load is finished (committed) first, so the store can take it."""
        c = self.conn
        if self._rebuild is not None:
            try:
                left = self._write(c, appends)
            except BaseException:
                self._abandon_load()
                raise
            if left:
                self.finish_load()
            else:
                self._flush_wal()
            return left
        c.execute("BEGIN IMMEDIATE")
        try:
            left = self._write(c, appends)
            c.execute("COMMIT")
        except sqlite3.IntegrityError:  # an event id already stored: the store decides
            c.execute("ROLLBACK")
            return list(range(len(appends)))
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        return left

    def _write(self, c: sqlite3.Connection, appends: Sequence[BulkAppend | BulkRows]) -> list[int]:
        last_position, _, chain_hash = c.execute(
            "SELECT last_position, chain_position, chain_hash FROM log_head"
        ).fetchone()
        chain = chain_hash or GENESIS
        now_us = time.time_ns() // 1000
        sha256, pack = hashlib.sha256, _U64.pack
        now = pack(now_us)
        heads: dict[str, tuple[int, int]] = {}  # stream -> (head version, head position)
        rows: list[tuple[Any, ...]] = []
        left: list[int] = []
        position = last_position
        loading = self._rebuild is not None
        kinds: dict[str, bytes] = {}  # type -> its length-prefixed bytes in the link
        for index, append in enumerate(appends):
            stream_id = append.stream_id
            head = heads.get(stream_id)
            if head is None:
                found = c.execute(
                    "SELECT head_version, head_position, deleted FROM streams WHERE stream_id = ?",
                    (stream_id,),
                ).fetchone()
                if found is not None and found[2]:
                    left.append(index)  # deleted: the store raises StreamDeleted
                    continue
                head = (found[0], found[1]) if found else (0, 0)
            rows_in = append.rows if isinstance(append, BulkRows) else _event_rows(append)
            if rows_in is None or not _plain(stream_id, append.expected, head[0], len(rows_in)):
                left.append(index)
                continue
            # eventstore.chain's digest and link, inlined (one SHA-256 call per event),
            # and the checks that each event is one the store takes as is (the types of
            # `EventRow`, ids and types within bounds) in the same pass
            start_position, start_chain, mark = position, chain, len(rows)
            version = head[0]
            sid = stream_id.encode()
            sid_lp = pack(len(sid)) + sid
            for event_id, type_, data, metadata, digest in rows_in:
                if (
                    type(data) is not bytes
                    or type(event_id) is not str
                    or type(type_) is not str
                    or type(digest) is not bytes
                    or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
                ):
                    break
                kind_lp = kinds.get(type_)
                if kind_lp is None:
                    kind_lp = _kind_lp(type_)
                    if kind_lp is None:
                        break
                    kinds[type_] = kind_lp
                if metadata is None:
                    if len(data) > MAX_EVENT_BYTES:
                        break
                elif type(metadata) is not bytes or len(data) + len(metadata) > MAX_EVENT_BYTES:
                    break
                position += 1
                version += 1
                eid = event_id.encode()
                chain = sha256(
                    b"".join((
                        DOMAIN, chain, pack(position), sid_lp, pack(version),
                        pack(len(eid)), eid, kind_lp, now, digest,
                    ))
                ).digest()  # fmt: skip
                rows.append(
                    (position, stream_id, version, event_id, type_, data, metadata, now_us,
                     digest, chain)
                )  # fmt: skip
            else:
                if not (
                    self._clashes([r[0] for r in rows_in])
                    if loading
                    else append.expected is ExpectedState.ANY
                    and _any_stored(c, [r[0] for r in rows_in])
                ):
                    heads[stream_id] = (version, position)
                    continue
            # an event the store must judge, or an id that may be stored: all of this
            # append goes to the store
            del rows[mark:]
            position, chain = start_position, start_chain
            left.append(index)
        if not rows:
            return left
        c.executemany(
            "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, "
            "recorded_at, digest, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        c.executemany(
            "INSERT INTO streams (stream_id, head_version, head_position) VALUES (?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET head_version = excluded.head_version, "
            "head_position = excluded.head_position",
            [(s, v, p) for s, (v, p) in heads.items()],
        )
        c.execute(
            "UPDATE log_head SET last_position = ?, chain_position = ?, chain_hash = ?",
            (position, position, chain),
        )
        return left

    def _flush_wal(self) -> None:
        """During a load: write the pages SQLite spilled into the WAL to disk now, as
        each group's commit did before, so the final commit does not wait for the
        whole load's bytes at once. Only flushing (SQLite takes no lock on the WAL
        file, so opening and closing it here releases none of its locks). Not in a
        rollback journal: there the spilled pages are in the database file, and
        closing a descriptor of it here would drop SQLite's POSIX locks on it (they
        belong to the process and the file, not to a descriptor)."""
        if self._journal:
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _clashes(self, event_ids: Sequence[str]) -> bool:
        """During a load (no event-id index): whether an event id may be one this load
        wrote already, or repeats within the append; if not, its ids are noted. Kept as
        hashes (a third of the memory of the ids): a hash shared by two different ids
        only leaves that append to the store, which looks the id up properly."""
        hashes = set(map(hash, event_ids))
        loaded = self._loaded
        if len(hashes) != len(event_ids) or not loaded.isdisjoint(hashes):
            return True
        loaded.update(hashes)
        return False

    def close(self) -> None:
        """Close; a load not finished is rolled back (nothing of it was committed), and
        a file locked for it is in WAL mode again."""
        try:
            self._abandon_load()
        except sqlite3.Error:  # closing rolls back all the same; the store sets WAL mode
            pass
        finally:
            self.conn.close()

    def _abandon_load(self) -> None:
        """Undo a load (nothing of it was committed, so all of it) and leave a rollback
        journal for WAL mode; outside a load, only an open transaction is rolled back."""
        self._rebuild, self._loaded = None, set()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._back_to_wal()


def _any_stored(c: sqlite3.Connection, event_ids: Sequence[str]) -> bool:
    """Whether an event id is stored already: a retry, which the store answers."""
    return any(
        c.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone()
        for event_id in event_ids
    )


def _event_rows(append: BulkAppend) -> list[EventRow] | None:
    """A `BulkAppend`'s events as rows, with their content digests (given or computed
    here), or None if one is not encoded already (JSON bytes, a text id)."""
    digests = append.digests
    if digests is not None and len(digests) != len(append.events):
        return None
    rows: list[EventRow] = []
    for n, event in enumerate(append.events):
        data, metadata, event_id = event.data, event.metadata, event.event_id
        if not (
            type(data) is bytes
            and (metadata is None or type(metadata) is bytes)
            and type(event_id) is str
        ):
            return None
        digest = digests[n] if digests is not None else content_digest(data, metadata)
        rows.append((event_id, event.type, data, metadata, digest))
    return rows


def _kind_lp(type_: str) -> bytes | None:
    """An event type's length-prefixed bytes in the chain link, or None if the store
    would refuse the type (blank, too long)."""
    if not type_.strip() or len(type_) > MAX_TYPE_LENGTH:
        return None
    kind = type_.encode()
    return _U64.pack(len(kind)) + kind


def _plain(stream_id: str, expected: Expected, head: int, count: int) -> bool:
    """An append the store would take as is, as far as the append goes: its expectation
    met, the stream id one the store accepts, not empty and not too many events (each
    event is checked as it is written). Anything else goes to the store (which refuses
    or retries it in its own words)."""
    if expected is ExpectedState.NO_STREAM:
        if head != 0:
            return False
    elif expected is not ExpectedState.ANY and expected != head:
        return False
    try:
        validate_stream_id(stream_id)
    except InvalidEvent:
        return False
    return 0 < count <= MAX_EVENTS_PER_APPEND
