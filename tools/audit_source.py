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

from .audit_checks import CheckpointRow, EventRow, StreamRow
from .logio import UsageError

FETCH = 5000
DUPLICATE_IDS_SQL = (
    "SELECT event_id, COUNT(*) FROM events GROUP BY event_id HAVING COUNT(*) > 1 "
    "ORDER BY event_id LIMIT 1000"
)


class LogSource(Protocol):
    async def head(self) -> int: ...
    async def event_count(self) -> int: ...
    def events(self) -> AsyncIterator[list[EventRow]]: ...
    async def streams(self) -> list[StreamRow]: ...
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
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        self.conn.execute("PRAGMA query_only=1")
        self.conn.execute("BEGIN")  # deferred: the snapshot starts at the first read
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if not {"events", "streams", "log_head", "checkpoints"} <= tables:
            raise UsageError(f"{file} is not a hivelog database (tables missing)")

    async def head(self) -> int:
        row = self.conn.execute("SELECT last_position FROM log_head").fetchone()
        return int(row[0]) if row else 0

    async def event_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    async def events(self) -> AsyncIterator[list[EventRow]]:
        cursor = self.conn.execute(
            "SELECT position, stream_id, version, event_id, type, data, metadata, recorded_at "
            "FROM events ORDER BY position"
        )
        while rows := cursor.fetchmany(FETCH):
            yield list(map(EventRow._make, rows))

    async def streams(self) -> list[StreamRow]:
        rows = self.conn.execute(
            "SELECT stream_id, head_version, head_position, deleted, erased_events FROM streams"
        )
        return [StreamRow(s, v, p, bool(d), e) for s, v, p, d, e in rows]

    async def checkpoints(self) -> list[CheckpointRow]:
        rows = self.conn.execute("SELECT name, position FROM checkpoints ORDER BY name")
        return [CheckpointRow(n, p) for n, p in rows]

    async def checkpoint_state(self, name: str) -> tuple[int, bytes] | None:
        row = self.conn.execute(
            "SELECT position, state FROM checkpoints WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

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
        return source

    async def head(self) -> int:
        value = await self.conn.fetchval(
            f"SELECT greatest((SELECT coalesce(max(position), 0) FROM {self.q}.events), "
            f"erased_up_to) FROM {self.q}.log_state"
        )
        return int(value or 0)

    async def event_count(self) -> int:
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {self.q}.events"))

    async def events(self) -> AsyncIterator[list[EventRow]]:
        cursor = self.conn.cursor(
            "SELECT position, stream_id, version, event_id, type, data::text, metadata::text, "
            "(extract(epoch FROM recorded_at) * 1000000)::bigint "
            f"FROM {self.q}.events ORDER BY position",
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

    async def streams(self) -> list[StreamRow]:
        live = await self.conn.fetch(
            "SELECT stream_id, max(version), (array_agg(position ORDER BY version DESC))[1] "
            f"FROM {self.q}.events GROUP BY stream_id"
        )
        dead = await self.conn.fetch(
            f"SELECT stream_id, head_version, head_position, erased_events FROM {self.q}.tombstones"
        )
        tombstoned = {r[0] for r in dead}
        rows = [StreamRow(r[0], r[1], r[2], True, r[3]) for r in dead]
        rows += [StreamRow(r[0], r[1], r[2], False, 0) for r in live if r[0] not in tombstoned]
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
