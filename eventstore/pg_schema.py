"""PostgreSQL schema of the event store: names, versioned migrations, the migrator.

Everything lives in one schema (default `hivelog`), so several independent logs can
share a database; the append lock key and the NOTIFY channel are derived from the
schema name for the same reason. Migrations run in one transaction under an
advisory lock, so two processes opening a fresh database at once apply each
migration exactly once, and a crash mid-migration leaves nothing half-applied.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from .types import EventStoreError, InvalidEvent

# Two-int advisory lock keys: (hivelog's class id, per-schema key), so our locks
# cannot collide with another application's single-bigint keys (postgres.md pitfall 9).
APPEND_LOCK_CLASS: Final = 0x68766C01  # "hvl" 1
MIGRATE_LOCK_CLASS: Final = 0x68766C02  # "hvl" 2

DEFAULT_SCHEMA: Final = "hivelog"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")

# Outcomes of append_events(); anything else comes back as an SQL error.
APPENDED: Final = 0
WRONG_VERSION: Final = 1
DELETED: Final = 2

# The `expected` argument of append_events(): >= 0 is an exact version.
EXPECT_ANY: Final = -1
EXPECT_NO_STREAM: Final = -2
EXPECT_EXISTS: Final = -3

EVENT_ID_CONSTRAINT: Final = "events_event_id"


@dataclass(frozen=True, slots=True)
class SchemaNames:
    """The identifiers one store instance uses, derived once from the schema name."""

    schema: str
    lock_key: int
    channel: str

    @classmethod
    def for_schema(cls, schema: str) -> SchemaNames:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidEvent(
                f"schema name {schema!r}: use 1-48 of a-z, 0-9 and _, not starting with a digit"
            )
        crc = zlib.crc32(schema.encode())
        lock_key = crc - (1 << 32) if crc >= (1 << 31) else crc  # a signed int4
        return cls(schema, lock_key, f"hivelog_{schema}")

    @property
    def q(self) -> str:
        """The schema as a quoted identifier, ready to prefix table names."""
        return f'"{self.schema}"'


# (description, SQL) per version; `{s}` is the quoted schema, `{lock}` the append lock
# arguments, `{channel}` the NOTIFY channel. Append-only: never edit a shipped entry.
MIGRATIONS: Final[list[tuple[str, str]]] = [
    (
        "events, tombstones, log state, checkpoints; append and delete functions",
        """
CREATE TABLE {s}.events (
    position bigint PRIMARY KEY,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    data json NOT NULL,
    metadata json,
    recorded_at timestamptz NOT NULL,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_stream_version UNIQUE (stream_id, version),
    CONSTRAINT events_event_id UNIQUE (event_id)
);
CREATE INDEX events_stream_position ON {s}.events (stream_id, position);

CREATE TABLE {s}.tombstones (
    stream_id text PRIMARY KEY,
    head_version bigint NOT NULL,
    head_position bigint NOT NULL,
    erased_events bigint NOT NULL,
    deleted_at timestamptz NOT NULL
);

-- Positions are max(position) + 1 under the append lock; erased_up_to keeps the
-- positions of erased events from ever being handed out again.
CREATE TABLE {s}.log_state (
    id int PRIMARY KEY CHECK (id = 1),
    erased_up_to bigint NOT NULL
);
INSERT INTO {s}.log_state (id, erased_up_to) VALUES (1, 0);

CREATE TABLE {s}.checkpoints (
    name text PRIMARY KEY,
    position bigint NOT NULL,
    state bytea NOT NULL,
    saved_at timestamptz NOT NULL
);

-- The only writer of events. One autocommit call: the lock is held from here to the
-- end of COMMIT, so positions are gapless and visible in exactly their order.
CREATE FUNCTION {s}.append_events(
    p_stream text, p_expected bigint,
    p_ids text[], p_types text[], p_data json[], p_metadata json[],
    OUT status int, OUT head bigint, OUT last_position bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_next bigint;
    v_now timestamptz;
BEGIN
    -- Acknowledged means flushed, whatever the role's or server's default says.
    PERFORM set_config('synchronous_commit', 'on', true);
    PERFORM pg_advisory_xact_lock({lock});
    last_position := 0;
    IF EXISTS (SELECT 1 FROM {s}.tombstones t WHERE t.stream_id = p_stream) THEN
        status := 2; head := 0;
        RETURN;
    END IF;
    SELECT coalesce(max(e.version), 0) INTO head FROM {s}.events e WHERE e.stream_id = p_stream;
    IF NOT (p_expected = -1 OR p_expected = head OR (p_expected = -2 AND head = 0)
            OR (p_expected = -3 AND head > 0)) THEN
        status := 1;
        RETURN;
    END IF;
    SELECT greatest((SELECT coalesce(max(e.position), 0) FROM {s}.events e), l.erased_up_to) + 1
        INTO v_next FROM {s}.log_state l;
    v_now := clock_timestamp();  -- one commit time for the batch, taken under the lock
    INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, metadata,
                            recorded_at)
    SELECT v_next + u.i - 1, p_stream, head + u.i, u.id, u.type, u.data, u.metadata, v_now
    FROM unnest(p_ids, p_types, p_data, p_metadata) WITH ORDINALITY
         AS u(id, type, data, metadata, i);
    last_position := v_next + cardinality(p_ids) - 1;
    PERFORM pg_notify('{channel}', last_position::text);
    status := 0;
END
$fn$;

-- Tombstone a stream and erase its events, under the same lock as appends.
CREATE FUNCTION {s}.delete_stream(p_stream text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    v_head bigint;
    v_head_position bigint;
    v_erased bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    PERFORM pg_advisory_xact_lock({lock});
    UPDATE {s}.log_state SET erased_up_to = m.top
    FROM (SELECT max(position) AS top FROM {s}.events) m
    WHERE m.top > erased_up_to;
    SELECT e.version, e.position INTO v_head, v_head_position FROM {s}.events e
    WHERE e.stream_id = p_stream ORDER BY e.version DESC LIMIT 1;
    DELETE FROM {s}.events WHERE stream_id = p_stream;
    GET DIAGNOSTICS v_erased = ROW_COUNT;
    INSERT INTO {s}.tombstones AS t (stream_id, head_version, head_position, erased_events,
                                     deleted_at)
    VALUES (p_stream, coalesce(v_head, 0), coalesce(v_head_position, 0), v_erased, now())
    ON CONFLICT (stream_id) DO UPDATE
        SET erased_events = t.erased_events + excluded.erased_events;
    PERFORM pg_notify('{channel}', '0');
    RETURN v_erased;
END
$fn$;
""",
    ),
    (
        "leases: node liveness and claims on due trigger fires (eventstore/leases.py)",
        """
CREATE TABLE {s}.leases (
    name text PRIMARY KEY,
    owner text NOT NULL,
    fence bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
""",
    ),
    (
        "consumer groups: settings + cursor, outstanding deliveries (eventstore/subscriptions.py)",
        """
CREATE TABLE {s}.subscription_groups (
    name text PRIMARY KEY,
    settings text NOT NULL,
    cursor bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.subscription_deliveries (
    group_name text NOT NULL,
    position bigint NOT NULL,
    session_id text NOT NULL,
    delivery_id text NOT NULL,
    attempt int NOT NULL,
    handouts int NOT NULL,
    state text NOT NULL,
    deadline float8 NOT NULL,
    worker text,
    reason text,
    PRIMARY KEY (group_name, position)
);
CREATE INDEX subscription_deliveries_state
    ON {s}.subscription_deliveries (group_name, state, position);
""",
    ),
]


def render(sql: str, names: SchemaNames) -> str:
    lock = f"{APPEND_LOCK_CLASS}, {names.lock_key}"
    return sql.replace("{s}", names.q).replace("{lock}", lock).replace("{channel}", names.channel)


async def migrate(conn: Any, names: SchemaNames) -> int:
    """Bring the schema to the newest version; returns how many migrations were applied."""
    newest = len(MIGRATIONS)
    current = await _current_version(conn, names)
    if current == newest:
        return 0  # the common case: no lock, no transaction
    if current > newest:
        raise EventStoreError(
            f"schema {names.schema!r} is at version {current}; this hivelog knows up to {newest}"
        )
    applied_now = 0
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, $2)", MIGRATE_LOCK_CLASS, names.lock_key
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {names.q}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {names.q}.schema_migrations ("
            "version int PRIMARY KEY, description text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {
            v for (v,) in await conn.fetch(f"SELECT version FROM {names.q}.schema_migrations")
        }
        if max(applied, default=0) > newest:
            raise EventStoreError(
                f"schema {names.schema!r} has migrations newer than this hivelog knows"
            )
        for version, (description, sql) in enumerate(MIGRATIONS, start=1):
            if version in applied:
                continue
            await conn.execute(render(sql, names))
            await conn.execute(
                f"INSERT INTO {names.q}.schema_migrations (version, description) VALUES ($1, $2)",
                version,
                description,
            )
            applied_now += 1
    return applied_now


async def _current_version(conn: Any, names: SchemaNames) -> int:
    try:
        value = await conn.fetchval(f"SELECT max(version) FROM {names.q}.schema_migrations")
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return 0
    return int(value or 0)
