"""Where the audit reads the log: the SQLite file directly (read-only), or PostgreSQL.

The audit reads the tables themselves, not the store API, because what it looks
for (a missing row, a duplicated id, a head row that disagrees) is exactly what
the API hides. SQLite is opened with `mode=ro` inside one read transaction, so
every check sees the same snapshot even while a service keeps appending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from eventstore import InvalidEvent
from eventstore import sqlite_checkpoints as checkpoints
from eventstore.sqlite_verify import SQLITE_MAGIC, quick_check_problems

from .audit_checks import CheckpointRow, EventRow, StreamRow
from .logio import UsageError

FETCH = 5000
CHAIN_MISSING = (
    "this log predates the hash chain (schema version {v}); open it once with a "
    "hivelog that has the chain (e.g. `hivelog serve`) to hash it"
)
# The link just before a position: from a live event or from an erased one's link.
LINK_BEFORE_SQL = (
    "SELECT position, chain FROM (SELECT position, chain FROM events WHERE position < $1 "
    "AND chain IS NOT NULL ORDER BY position DESC LIMIT 1) AS live UNION ALL "
    "SELECT position, chain FROM (SELECT position, chain FROM erased_links "
    "WHERE position < $1 ORDER BY position DESC LIMIT 1) AS gone ORDER BY position DESC LIMIT 1"
)
ERASED_LINKS_SQL = (
    "SELECT position, stream_id, version, event_id, type, {rec}, digest, chain "
    "FROM erased_links WHERE position > $1 ORDER BY position"
)
DUPLICATE_IDS_SQL = (
    "SELECT event_id, COUNT(*) FROM events GROUP BY event_id HAVING COUNT(*) > 1 "
    "ORDER BY event_id LIMIT 1000"
)


class LogSource(Protocol):
    async def head(self) -> int: ...
    async def event_count(self) -> int: ...
    def events(self, after: int = 0, *, plain: bool = False) -> AsyncIterator[list[EventRow]]:
        """Every event row after `after` in position order, in chunks. `plain`: the rows
        may be plain tuples in EventRow's column order (for callers that index them and
        make an EventRow with `audit_checks.as_row` only where they need the names)."""
        ...

    async def storage_problems(self) -> list[str]: ...
    async def chain_missing(self) -> str | None: ...
    async def link_before(self, position: int) -> tuple[int, bytes] | None: ...
    async def erased_links(self, after: int) -> list[tuple[Any, ...]]: ...
    async def recorded_chain_head(self) -> tuple[int, bytes] | None: ...
    async def schema_version(self) -> int: ...
    async def chain_head(self) -> tuple[int, bytes]: ...
    async def streams(self) -> list[StreamRow]: ...
    async def archive_cuts(self) -> dict[str, int]: ...
    async def checkpoints(self) -> list[CheckpointRow]: ...
    async def checkpoint_state(self, name: str) -> tuple[int, bytes] | None: ...
    async def duplicate_ids(self) -> list[tuple[str, int]]: ...
    async def close(self) -> None: ...


class SQLiteSource:
    """The SQLite file opened read-only, all reads in one transaction."""

    def __init__(self, path: str) -> None:
        file = Path(path)
        if not file.is_file():
            raise UsageError(f"no database at {file}")
        uri = file.resolve().as_uri() + "?mode=ro"
        with file.open("rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise UsageError(f"{file} is not a SQLite database (no SQLite header)")
        self.uri = uri
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            self.conn.execute("PRAGMA query_only=1")
            self.conn.execute("BEGIN")  # deferred: the snapshot starts at the first read
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(events)")}
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise UsageError(f"{file} cannot be read as a database: {exc}") from None
        if not {"events", "streams", "log_head", "checkpoints"} <= tables:
            self.conn.close()
            raise UsageError(f"{file} is not a hivelog database (tables missing)")
        self.chained = "chain" in columns and "erased_links" in tables
        self.parted = "checkpoint_parts" in tables  # large checkpoints in parts (migration 6)

    async def head(self) -> int:
        row = self.conn.execute("SELECT last_position FROM log_head").fetchone()
        return int(row[0]) if row else 0

    async def event_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    async def events(self, after: int = 0, *, plain: bool = False) -> AsyncIterator[list[EventRow]]:
        chain = "digest, chain" if self.chained else "NULL, NULL"
        cursor = self.conn.execute(
            "SELECT position, stream_id, version, event_id, type, data, metadata, recorded_at, "
            f"{chain} FROM events WHERE position > ? ORDER BY position",
            (after,),
        )
        while rows := cursor.fetchmany(FETCH):
            yield rows if plain else list(map(EventRow._make, rows))

    async def storage_problems(self) -> list[str]:
        return quick_check_problems(self.conn)

    def storage_problems_apart(self) -> list[str]:
        """`PRAGMA quick_check` on a connection of its own (read-only), so it can run in a
        thread while the pass reads the rows: SQLite checks the pages without the
        interpreter lock. It checks the file's pages as they are when it starts, which on
        a live log may be a newer snapshot than the pass's; either is the same file."""
        conn = sqlite3.connect(self.uri, uri=True, isolation_level=None)
        try:
            conn.execute("PRAGMA query_only=1")
            return quick_check_problems(conn)
        finally:
            conn.close()

    async def chain_missing(self) -> str | None:
        if self.chained:
            return None
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return CHAIN_MISSING.format(v=row[0] if row else 0)

    async def link_before(self, position: int) -> tuple[int, bytes] | None:
        row = self.conn.execute(LINK_BEFORE_SQL.replace("$1", "?"), (position, position)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    async def erased_links(self, after: int) -> list[tuple[Any, ...]]:
        sql = ERASED_LINKS_SQL.format(rec="recorded_at").replace("$1", "?")
        return [tuple(r) for r in self.conn.execute(sql, (after,))]

    async def schema_version(self) -> int:
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    async def chain_head(self) -> tuple[int, bytes]:
        """The newest link (position 0, 32 zero bytes for an empty or unchained log)."""
        recorded = await self.recorded_chain_head() if self.chained else None
        return recorded if recorded is not None else (0, bytes(32))

    async def recorded_chain_head(self) -> tuple[int, bytes] | None:
        row = self.conn.execute("SELECT chain_position, chain_hash FROM log_head").fetchone()
        if row is None or row[1] is None:
            return None
        return int(row[0]), bytes(row[1])

    async def archive_cuts(self) -> dict[str, int]:
        """Streams cut by `hivelog archive`: versions below the cut are in an archive."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(streams)")}
        if "truncated_before" not in columns:
            return {}
        rows = self.conn.execute(
            "SELECT stream_id, truncated_before FROM streams WHERE truncated_before > 0"
        )
        return {str(s): int(c) for s, c in rows}

    async def streams(self) -> list[StreamRow]:
        rows = self.conn.execute(
            "SELECT stream_id, head_version, head_position, deleted, erased_events FROM streams"
        )
        cuts = await self.archive_cuts()
        return [StreamRow(s, v, p, bool(d), e, cuts.get(s, 0)) for s, v, p, d, e in rows]

    async def checkpoints(self) -> list[CheckpointRow]:
        rows = self.conn.execute("SELECT name, position FROM checkpoints ORDER BY name")
        return [CheckpointRow(n, p) for n, p in rows]

    async def checkpoint_state(self, name: str) -> tuple[int, bytes] | None:
        sql = checkpoints.STATE_SQL if self.parted else checkpoints.UNPARTED_STATE_SQL
        rows = self.conn.execute(sql, (name,)).fetchall()
        joined = checkpoints.join_parts(rows)
        if joined is None and rows:  # parts missing: an unreadable state, a projection fault
            return int(rows[0][0]), b""
        return joined

    async def duplicate_ids(self) -> list[tuple[str, int]]:
        return [(str(i), int(n)) for i, n in self.conn.execute(DUPLICATE_IDS_SQL)]

    async def close(self) -> None:
        self.conn.close()


class PostgresSource:
    """The same reads through SQL on PostgreSQL, in one REPEATABLE READ read-only transaction.

    PostgreSQL keeps no head row per stream (a live stream's head is its newest
    event), only `tombstones` for deleted streams and `log_state.erased_up_to`,
    so the heads compared there are the tombstones' and the log's.
    """

    def __init__(self, conn: Any, transaction: Any, schema: str) -> None:
        self.conn = conn
        self.transaction = transaction
        self.q = schema
        self.chained = False

    @classmethod
    async def open(cls, url: str) -> PostgresSource:
        import asyncpg

        from eventstore.pg_schema import SchemaNames
        from eventstore.postgres import parse_postgres_url

        try:
            dsn, schema, _ = parse_postgres_url(url)
            names = SchemaNames.for_schema(schema)
        except InvalidEvent as exc:
            raise UsageError(str(exc)) from None
        conn = await asyncpg.connect(dsn)
        transaction = conn.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        source = cls(conn, transaction, names.q)
        found = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 "
            "AND table_name IN ('events', 'tombstones', 'log_state', 'checkpoints')",
            names.schema,
        )
        if found != 4:
            await source.close()
            raise UsageError(f"schema {names.schema!r} holds no hivelog log")
        source.chained = bool(
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_name = 'erased_links'",
                names.schema,
            )
        )
        return source

    async def head(self) -> int:
        value = await self.conn.fetchval(
            f"SELECT greatest((SELECT coalesce(max(position), 0) FROM {self.q}.events), "
            f"erased_up_to) FROM {self.q}.log_state"
        )
        return int(value or 0)

    async def event_count(self) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {self.q}.events"))

    async def events(self, after: int = 0, *, plain: bool = False) -> AsyncIterator[list[EventRow]]:
        chain = "digest, chain" if self.chained else "NULL::bytea, NULL::bytea"
        cursor = self.conn.cursor(
            "SELECT position, stream_id, version, event_id, type, data::text, metadata::text, "
            f"(extract(epoch FROM recorded_at) * 1000000)::bigint, {chain} "
            f"FROM {self.q}.events WHERE position > $1 ORDER BY position",
            after,
            prefetch=FETCH,
        )
        batch: list[EventRow] = []
        async for record in cursor:
            batch.append(EventRow._make(record))
            if len(batch) >= FETCH:
                yield batch
                batch = []
        if batch:
            yield batch

    async def storage_problems(self) -> list[str]:
        return []  # PostgreSQL checks its own pages (data checksums, amcheck)

    async def chain_missing(self) -> str | None:
        if self.chained:
            return None
        version = await self.conn.fetchval(f"SELECT max(version) FROM {self.q}.schema_migrations")
        return CHAIN_MISSING.format(v=version)

    async def link_before(self, position: int) -> tuple[int, bytes] | None:
        sql = LINK_BEFORE_SQL.replace("FROM events", f"FROM {self.q}.events").replace(
            "FROM erased_links", f"FROM {self.q}.erased_links"
        )
        row = await self.conn.fetchrow(sql, position)
        return None if row is None else (int(row[0]), bytes(row[1]))

    async def erased_links(self, after: int) -> list[tuple[Any, ...]]:
        sql = ERASED_LINKS_SQL.format(rec="recorded_at_us").replace(
            "FROM erased_links", f"FROM {self.q}.erased_links"
        )
        return [tuple(r) for r in await self.conn.fetch(sql, after)]

    async def schema_version(self) -> int:
        version = await self.conn.fetchval(f"SELECT max(version) FROM {self.q}.schema_migrations")
        return int(version or 0)

    async def chain_head(self) -> tuple[int, bytes]:
        """The newest link (position 0, 32 zero bytes for an empty or unchained log)."""
        if not self.chained:
            return 0, bytes(32)
        row = await self.conn.fetchrow(
            LINK_BEFORE_SQL.replace("FROM events", f"FROM {self.q}.events").replace(
                "FROM erased_links", f"FROM {self.q}.erased_links"
            ),
            2**62,
        )
        return (0, bytes(32)) if row is None else (int(row[0]), bytes(row[1]))

    async def recorded_chain_head(self) -> tuple[int, bytes] | None:
        # PostgreSQL keeps no separate head row (updating one per append halved the
        # append rate): the newest link is the head, so compare it with one written down.
        return None

    async def archive_cuts(self) -> dict[str, int]:
        """Streams cut by `hivelog archive` (erased ones too, as on SQLite): versions
        below the cut are in an archive. A log from before archiving has none."""
        found = await self.conn.fetchval("SELECT to_regclass($1)", f"{self.q}.stream_cuts")
        if found is None:
            return {}
        rows = await self.conn.fetch(
            f"SELECT stream_id, truncated_before FROM {self.q}.stream_cuts"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def streams(self) -> list[StreamRow]:
        """Tombstones, streams with live events, and streams archived whole (their head
        is the cut's: version cut - 1 at the position its cut row keeps)."""
        live = await self.conn.fetch(
            "SELECT stream_id, max(version), (array_agg(position ORDER BY version DESC))[1] "
            f"FROM {self.q}.events GROUP BY stream_id"
        )
        dead = await self.conn.fetch(
            f"SELECT stream_id, head_version, head_position, erased_events FROM {self.q}.tombstones"
        )
        cuts = await self.archive_cuts()
        whole: list[Any] = []
        if cuts:
            whole = await self.conn.fetch(
                f"SELECT stream_id, truncated_before - 1, cut_position FROM {self.q}.stream_cuts"
            )
        tombstoned = {r[0] for r in dead}
        rows = [StreamRow(r[0], r[1], r[2], True, r[3], cuts.get(r[0], 0)) for r in dead]
        rows += [
            StreamRow(r[0], r[1], r[2], False, 0, cuts.get(r[0], 0))
            for r in live
            if r[0] not in tombstoned
        ]
        seen = tombstoned | {r[0] for r in live}
        rows += [StreamRow(r[0], r[1], r[2], False, 0, r[1] + 1) for r in whole if r[0] not in seen]
        return rows

    async def checkpoints(self) -> list[CheckpointRow]:
        rows = await self.conn.fetch(
            f"SELECT name, position FROM {self.q}.checkpoints ORDER BY name"
        )
        return [CheckpointRow(r[0], r[1]) for r in rows]

    async def checkpoint_state(self, name: str) -> tuple[int, bytes] | None:
        row = await self.conn.fetchrow(
            f"SELECT position, state FROM {self.q}.checkpoints WHERE name = $1", name
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    async def duplicate_ids(self) -> list[tuple[str, int]]:
        rows = await self.conn.fetch(
            DUPLICATE_IDS_SQL.replace("FROM events", f"FROM {self.q}.events")
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def close(self) -> None:
        await self.transaction.rollback()
        await self.conn.close()


async def open_source(url: str) -> LogSource:
    if url.startswith("sqlite:///"):
        return SQLiteSource(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresSource.open(url)
    raise UsageError(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://...")
