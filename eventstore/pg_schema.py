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

from .types import InvalidEvent, StoreRefused

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
DUPLICATE_ID: Final = 3  # append_batch() only: an id is stored already (retry or clash)

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


# The hash chain (eventstore/chain.py has the definition and the Python twin). The
# functions build exactly the bytes chain.py hashes; append_events and delete_stream
# are replaced to maintain it under the append lock; existing events are hashed once.
CHAIN_MIGRATION: Final = """
ALTER TABLE {s}.events ADD COLUMN digest bytea, ADD COLUMN chain bytea;
CREATE TABLE {s}.erased_links (
    position bigint PRIMARY KEY,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    recorded_at_us bigint NOT NULL,
    digest bytea NOT NULL,
    chain bytea NOT NULL
);

CREATE FUNCTION {s}.chain_lp(p bytea) RETURNS bytea IMMUTABLE STRICT LANGUAGE sql
AS $fn$ SELECT int8send(length(p)::bigint) || p $fn$;

CREATE FUNCTION {s}.content_digest(p_data json, p_metadata json) RETURNS bytea
IMMUTABLE LANGUAGE sql AS $fn$
SELECT sha256({s}.chain_lp(convert_to(p_data::text, 'UTF8')) ||
    CASE WHEN p_metadata IS NULL THEN '\\x00'::bytea
         ELSE '\\x01'::bytea || {s}.chain_lp(convert_to(p_metadata::text, 'UTF8')) END)
$fn$;

CREATE FUNCTION {s}.chain_link(
    p_prev bytea, p_position bigint, p_stream text, p_version bigint, p_id text,
    p_type text, p_recorded_us bigint, p_digest bytea
) RETURNS bytea IMMUTABLE STRICT LANGUAGE sql AS $fn$
SELECT sha256(convert_to('hivelog-chain-v1', 'UTF8') || p_prev || int8send(p_position) ||
    {s}.chain_lp(convert_to(p_stream, 'UTF8')) || int8send(p_version) ||
    {s}.chain_lp(convert_to(p_id, 'UTF8')) || {s}.chain_lp(convert_to(p_type, 'UTF8')) ||
    int8send(p_recorded_us) || p_digest)
$fn$;

CREATE OR REPLACE FUNCTION {s}.append_events(
    p_stream text, p_expected bigint,
    p_ids text[], p_types text[], p_data json[], p_metadata json[],
    OUT status int, OUT head bigint, OUT last_position bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_next bigint;
    v_top bigint;
    v_gone bigint;
    v_gone_chain bytea;
    v_now timestamptz;
    v_now_us bigint;
    v_prev bytea;
    v_raw bytea;
    v_meta bytea;
    v_digests bytea[];
    v_chains bytea[];
BEGIN
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
    -- The previous link: the newest event's, or the newest erased event's if later.
    SELECT e.position, e.chain INTO v_top, v_prev FROM {s}.events e
        ORDER BY e.position DESC LIMIT 1;
    SELECT g.position, g.chain INTO v_gone, v_gone_chain FROM {s}.erased_links g
        ORDER BY g.position DESC LIMIT 1;
    IF v_gone IS NOT NULL AND (v_top IS NULL OR v_gone > v_top) THEN
        v_prev := v_gone_chain;
    END IF;
    v_prev := coalesce(v_prev, decode(repeat('00', 32), 'hex'));
    SELECT greatest(coalesce(v_top, 0), l.erased_up_to) + 1 INTO v_next FROM {s}.log_state l;
    v_now := clock_timestamp();  -- one commit time for the batch, taken under the lock
    v_now_us := (extract(epoch FROM v_now) * 1000000)::bigint;
    -- Digest and link per event (the twins of content_digest() and chain_link(), inlined),
    -- then one set-based INSERT.
    FOR i IN 1 .. cardinality(p_ids) LOOP
        v_raw := convert_to(p_data[i]::text, 'UTF8');
        v_raw := int8send(length(v_raw)::bigint) || v_raw;
        IF p_metadata[i] IS NULL THEN
            v_raw := v_raw || '\\x00'::bytea;
        ELSE
            v_meta := convert_to(p_metadata[i]::text, 'UTF8');
            v_raw := v_raw || '\\x01'::bytea || int8send(length(v_meta)::bigint) || v_meta;
        END IF;
        v_digests[i] := sha256(v_raw);
        v_prev := sha256(convert_to('hivelog-chain-v1', 'UTF8') || v_prev
            || int8send(v_next + i - 1)
            || {s}.chain_lp(convert_to(p_stream, 'UTF8'))
            || int8send(head + i)
            || {s}.chain_lp(convert_to(p_ids[i], 'UTF8'))
            || {s}.chain_lp(convert_to(p_types[i], 'UTF8'))
            || int8send(v_now_us) || v_digests[i]);
        v_chains[i] := v_prev;
    END LOOP;
    INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, metadata,
                            recorded_at, digest, chain)
    SELECT v_next + u.i - 1, p_stream, head + u.i, u.id, u.type, u.data, u.metadata, v_now,
           u.digest, u.chain
    FROM unnest(p_ids, p_types, p_data, p_metadata, v_digests, v_chains) WITH ORDINALITY
         AS u(id, type, data, metadata, digest, chain, i);
    last_position := v_next + cardinality(p_ids) - 1;
    PERFORM pg_notify('{channel}', last_position::text);
    status := 0;
END
$fn$;

CREATE OR REPLACE FUNCTION {s}.delete_stream(p_stream text) RETURNS bigint
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
    -- The content goes; the links stay, so the chain still verifies across the gap.
    INSERT INTO {s}.erased_links (position, stream_id, version, event_id, type,
                                  recorded_at_us, digest, chain)
    SELECT position, stream_id, version, event_id, type,
           (extract(epoch FROM recorded_at) * 1000000)::bigint, digest, chain
    FROM {s}.events WHERE stream_id = p_stream AND chain IS NOT NULL;
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

DO $do$
DECLARE
    r record;
    v_prev bytea := decode(repeat('00', 32), 'hex');
    v_digest bytea;
BEGIN
    PERFORM pg_advisory_xact_lock({lock});
    FOR r IN SELECT e.position, e.stream_id, e.version, e.event_id, e.type, e.data, e.metadata,
                    (extract(epoch FROM e.recorded_at) * 1000000)::bigint AS rec_us
             FROM {s}.events e ORDER BY e.position LOOP
        v_digest := {s}.content_digest(r.data, r.metadata);
        v_prev := {s}.chain_link(v_prev, r.position, r.stream_id, r.version, r.event_id,
                                 r.type, r.rec_us, v_digest);
        UPDATE {s}.events SET digest = v_digest, chain = v_prev WHERE position = r.position;
    END LOOP;
END
$do$;
"""

# Group commit (postgres.py coalesces the appends waiting on one node): N appends in
# one call, one lock, one commit, one NOTIFY. Each append is checked on its own
# (tombstone, expected version, ids already stored) against everything before it,
# earlier appends of the same batch included, so a batch is exactly the same appends
# made one after another; a refused append writes nothing and costs no savepoint.
# Per-append status codes as append_events(), plus 3 = an id is stored already.
BATCH_MIGRATION: Final = """
CREATE FUNCTION {s}.append_batch(
    p_streams text[], p_expected bigint[], p_counts int[],
    p_ids text[], p_types text[], p_data json[], p_metadata json[],
    OUT statuses int[], OUT heads bigint[], OUT last_positions bigint[]
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_next bigint;
    v_top bigint;
    v_gone bigint;
    v_gone_chain bytea;
    v_now timestamptz;
    v_now_us bigint;
    v_prev bytea;
    v_raw bytea;
    v_meta bytea;
    v_stream text;
    v_expected bigint;
    v_head bigint;
    v_from int := 0;
    v_n int;
    v_ids text[];
    v_digests bytea[];
    v_chains bytea[];
    v_any boolean := false;
    j int;
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    PERFORM pg_advisory_xact_lock({lock});
    SELECT e.position, e.chain INTO v_top, v_prev FROM {s}.events e
        ORDER BY e.position DESC LIMIT 1;
    SELECT g.position, g.chain INTO v_gone, v_gone_chain FROM {s}.erased_links g
        ORDER BY g.position DESC LIMIT 1;
    IF v_gone IS NOT NULL AND (v_top IS NULL OR v_gone > v_top) THEN
        v_prev := v_gone_chain;
    END IF;
    v_prev := coalesce(v_prev, decode(repeat('00', 32), 'hex'));
    SELECT greatest(coalesce(v_top, 0), l.erased_up_to) + 1 INTO v_next FROM {s}.log_state l;
    v_now := clock_timestamp();  -- one commit time for the batch, taken under the lock
    v_now_us := (extract(epoch FROM v_now) * 1000000)::bigint;
    statuses := '{}'; heads := '{}'; last_positions := '{}';
    FOR a IN 1 .. cardinality(p_streams) LOOP
        v_stream := p_streams[a];
        v_expected := p_expected[a];
        v_n := p_counts[a];
        v_ids := p_ids[v_from + 1 : v_from + v_n];
        IF EXISTS (SELECT 1 FROM {s}.tombstones t WHERE t.stream_id = v_stream) THEN
            statuses := statuses || 2; heads := heads || 0::bigint;
            last_positions := last_positions || 0::bigint;
            v_from := v_from + v_n;
            CONTINUE;
        END IF;
        SELECT coalesce(max(e.version), 0) INTO v_head FROM {s}.events e
            WHERE e.stream_id = v_stream;
        heads := heads || v_head;
        IF NOT (v_expected = -1 OR v_expected = v_head OR (v_expected = -2 AND v_head = 0)
                OR (v_expected = -3 AND v_head > 0)) THEN
            statuses := statuses || 1; last_positions := last_positions || 0::bigint;
            v_from := v_from + v_n;
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM {s}.events e WHERE e.event_id = ANY(v_ids)) THEN
            statuses := statuses || 3; last_positions := last_positions || 0::bigint;
            v_from := v_from + v_n;
            CONTINUE;
        END IF;
        v_digests := '{}'; v_chains := '{}';
        FOR i IN 1 .. v_n LOOP
            j := v_from + i;
            v_raw := convert_to(p_data[j]::text, 'UTF8');
            v_raw := int8send(length(v_raw)::bigint) || v_raw;
            IF p_metadata[j] IS NULL THEN
                v_raw := v_raw || '\\x00'::bytea;
            ELSE
                v_meta := convert_to(p_metadata[j]::text, 'UTF8');
                v_raw := v_raw || '\\x01'::bytea || int8send(length(v_meta)::bigint) || v_meta;
            END IF;
            v_digests[i] := sha256(v_raw);
            v_prev := sha256(convert_to('hivelog-chain-v1', 'UTF8') || v_prev
                || int8send(v_next + i - 1)
                || {s}.chain_lp(convert_to(v_stream, 'UTF8'))
                || int8send(v_head + i)
                || {s}.chain_lp(convert_to(p_ids[j], 'UTF8'))
                || {s}.chain_lp(convert_to(p_types[j], 'UTF8'))
                || int8send(v_now_us) || v_digests[i]);
            v_chains[i] := v_prev;
        END LOOP;
        INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, metadata,
                                recorded_at, digest, chain)
        SELECT v_next + u.i - 1, v_stream, v_head + u.i, u.id, u.type, u.data, u.metadata,
               v_now, u.digest, u.chain
        FROM unnest(v_ids, p_types[v_from + 1 : v_from + v_n],
                    p_data[v_from + 1 : v_from + v_n], p_metadata[v_from + 1 : v_from + v_n],
                    v_digests, v_chains) WITH ORDINALITY
             AS u(id, type, data, metadata, digest, chain, i);
        v_next := v_next + v_n;
        statuses := statuses || 0;
        last_positions := last_positions || (v_next - 1);
        v_any := true;
        v_from := v_from + v_n;
    END LOOP;
    IF v_any THEN
        PERFORM pg_notify('{channel}', (v_next - 1)::text);
    END IF;
END
$fn$;
"""

# Group commit, set-based (migration 6 replaces append_batch(), same signature and
# results): every append's look-ups (tombstone, stored head, the append before it on the
# same stream in this batch, ids stored already) in two statements instead of three
# queries per append; digests and each link's bytes but its predecessor in one statement;
# only the chain itself stays a loop (each link needs the one before); one INSERT for the
# whole batch. Two appends in one batch carrying the same new id make that INSERT fail:
# nothing is written and postgres.py re-sends the batch one append at a time.
BATCH_SET_MIGRATION: Final = """
CREATE OR REPLACE FUNCTION {s}.append_batch(
    p_streams text[], p_expected bigint[], p_counts int[],
    p_ids text[], p_types text[], p_data json[], p_metadata json[],
    OUT statuses int[], OUT heads bigint[], OUT last_positions bigint[]
) LANGUAGE plpgsql
-- Plans are cached per connection: one made while the log was nearly empty must not
-- stay a sequential scan once it has grown (autovacuum may analyze late, or never).
-- No JIT: the one-row log_state scan would then cost enough to be compiled every call.
SET enable_seqscan = off
SET jit = off
AS $fn$
DECLARE
    v_apps int := cardinality(p_streams);
    v_events int := cardinality(p_ids);
    v_next bigint;
    v_top bigint;
    v_gone bigint;
    v_gone_chain bytea;
    v_erased bigint;
    v_now timestamptz;
    v_now_us bigint;
    v_prev bytea;
    v_dead boolean[];
    v_db_heads bigint[];
    v_same int[];
    v_stored int[];
    v_after bigint[];
    v_head bigint;
    v_expected bigint;
    v_n int;
    v_from int := 0;
    v_pos bigint[];
    v_ver bigint[];
    v_stream text[];
    v_digests bytea[];
    v_chains bytea[];
    v_tails bytea[];
    v_any boolean := false;
    v_domain bytea := convert_to('hivelog-chain-v1', 'UTF8');
BEGIN
    -- Few statements: each costs a round through the executor, all of it under the lock.
    PERFORM set_config('synchronous_commit', 'on', true), pg_advisory_xact_lock({lock});
    -- The previous link (the newest event's, or the newest erased event's if later) and
    -- the next position, in one statement.
    SELECT t.position, t.chain, g.position, g.chain, l.erased_up_to
      INTO v_top, v_prev, v_gone, v_gone_chain, v_erased
      FROM {s}.log_state l
      LEFT JOIN LATERAL (SELECT e.position, e.chain FROM {s}.events e
                         ORDER BY e.position DESC LIMIT 1) t ON true
      LEFT JOIN LATERAL (SELECT x.position, x.chain FROM {s}.erased_links x
                         ORDER BY x.position DESC LIMIT 1) g ON true;
    IF v_gone IS NOT NULL AND (v_top IS NULL OR v_gone > v_top) THEN
        v_prev := v_gone_chain;
    END IF;
    v_prev := coalesce(v_prev, decode(repeat('00', 32), 'hex'));
    v_next := greatest(coalesce(v_top, 0), v_erased) + 1;
    v_now := clock_timestamp();  -- one commit time for the batch, taken under the lock
    v_now_us := (extract(epoch FROM v_now) * 1000000)::bigint;
    -- Every append's look-ups in one statement: tombstone, stored head, the append before
    -- it on the same stream in this batch (whose outcome decides its head), and which
    -- events carry an id stored already (rare).
    SELECT array_agg(t.stream_id IS NOT NULL ORDER BY a.n),
           array_agg(coalesce(h.version, 0) ORDER BY a.n),
           array_agg(a.same ORDER BY a.n),
           (SELECT array_agg(u.j::int) FROM unnest(p_ids) WITH ORDINALITY AS u(id, j)
             WHERE EXISTS (SELECT 1 FROM {s}.events e WHERE e.event_id = u.id))
      INTO v_dead, v_db_heads, v_same, v_stored
      FROM (SELECT u.s, u.n, lag(u.n::int) OVER (PARTITION BY u.s ORDER BY u.n) AS same
            FROM unnest(p_streams) WITH ORDINALITY AS u(s, n)) a
      LEFT JOIN {s}.tombstones t ON t.stream_id = a.s
      LEFT JOIN LATERAL (SELECT e.version FROM {s}.events e WHERE e.stream_id = a.s
                         ORDER BY e.version DESC LIMIT 1) h ON true;
    statuses := array_fill(0, ARRAY[v_apps]);
    heads := array_fill(0::bigint, ARRAY[v_apps]);
    last_positions := array_fill(0::bigint, ARRAY[v_apps]);
    v_after := array_fill(0::bigint, ARRAY[v_apps]);
    v_pos := array_fill(NULL::bigint, ARRAY[v_events]);
    v_ver := array_fill(NULL::bigint, ARRAY[v_events]);
    v_stream := array_fill(NULL::text, ARRAY[v_events]);
    FOR a IN 1 .. v_apps LOOP
        v_n := p_counts[a];
        IF v_dead[a] THEN
            statuses[a] := 2;
        ELSE
            IF v_same[a] IS NULL THEN
                v_head := v_db_heads[a];
            ELSE
                v_head := v_after[v_same[a]];
            END IF;
            v_after[a] := v_head;
            heads[a] := v_head;
            v_expected := p_expected[a];
            IF NOT (v_expected = -1 OR v_expected = v_head OR (v_expected = -2 AND v_head = 0)
                    OR (v_expected = -3 AND v_head > 0)) THEN
                statuses[a] := 1;
            ELSIF v_stored IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(v_stored) AS d(j)
                                                   WHERE d.j > v_from AND d.j <= v_from + v_n) THEN
                statuses[a] := 3;
            ELSE
                FOR i IN 1 .. v_n LOOP
                    v_pos[v_from + i] := v_next + i - 1;
                    v_ver[v_from + i] := v_head + i;
                    v_stream[v_from + i] := p_streams[a];
                END LOOP;
                v_next := v_next + v_n;
                v_after[a] := v_head + v_n;
                last_positions[a] := v_next - 1;
                v_any := true;
            END IF;
        END IF;
        v_from := v_from + v_n;
    END LOOP;
    IF NOT v_any THEN
        RETURN;
    END IF;
    -- Digests, and each link's bytes but its predecessor, set-based (NULL where refused);
    -- then the chain itself, which is sequential.
    SELECT array_agg(sha256(x.lpdata || x.meta) ORDER BY x.j),
           array_agg(int8send(x.pos) || x.lps || int8send(x.ver) || x.lpi || x.lpt
                     || int8send(v_now_us) || sha256(x.lpdata || x.meta) ORDER BY x.j)
      INTO v_digests, v_tails
      FROM (SELECT u.j, u.pos, u.ver,
                   {s}.chain_lp(convert_to(u.stream, 'UTF8')) AS lps,
                   {s}.chain_lp(convert_to(u.id, 'UTF8')) AS lpi,
                   {s}.chain_lp(convert_to(u.type, 'UTF8')) AS lpt,
                   {s}.chain_lp(convert_to(u.data::text, 'UTF8')) AS lpdata,
                   CASE WHEN u.metadata IS NULL THEN '\\x00'::bytea
                        ELSE '\\x01'::bytea || {s}.chain_lp(convert_to(u.metadata::text, 'UTF8'))
                   END AS meta
              FROM unnest(p_ids, p_types, p_data, p_metadata, v_pos, v_ver, v_stream)
                   WITH ORDINALITY AS u(id, type, data, metadata, pos, ver, stream, j)) x;
    v_chains := array_fill(NULL::bytea, ARRAY[v_events]);
    FOR j IN 1 .. v_events LOOP
        IF v_tails[j] IS NOT NULL THEN
            v_prev := sha256(v_domain || v_prev || v_tails[j]);
            v_chains[j] := v_prev;
        END IF;
    END LOOP;
    INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, metadata,
                            recorded_at, digest, chain)
    SELECT u.pos, u.stream, u.ver, u.id, u.type, u.data, u.metadata, v_now, u.digest, u.chain
      FROM unnest(p_ids, p_types, p_data, p_metadata, v_pos, v_ver, v_stream, v_digests,
                  v_chains) AS u(id, type, data, metadata, pos, ver, stream, digest, chain)
     WHERE u.pos IS NOT NULL;
    PERFORM pg_notify('{channel}', (v_next - 1)::text);
END
$fn$;
"""


def _derived(sql: str, start: str, end: str, edits: list[tuple[str, str]]) -> str:
    """The text of `sql` from `start` up to `end`, with each (old, new) replaced once:
    a later migration that changes a few lines of a shipped function keeps the rest of
    it byte for byte (checked here, at import, so a shipped entry edited by mistake
    fails loudly instead of replacing a function with something else)."""
    begin = sql.index(start)
    text = sql[begin : sql.index(end, begin)]
    for old, replacement in edits:
        if text.count(old) != 1:
            raise AssertionError(f"migration source changed: {old!r}")
        text = text.replace(old, replacement)
    return text


# Archiving (truncate-before; tools/archive.py), as SQLite's migration 5: versions
# below a stream's cut were moved to an archive folder, their links stay in
# erased_links (as after an erase) so the chain still verifies. PostgreSQL keeps no
# head row per stream (the head is the newest event), so the cut is a row of its own,
# with the position of the last archived version: a stream archived whole keeps its
# head (version cut - 1) through it, and the append functions and delete_stream read
# the head as the newest live event, else the cut's. The index serves the archive's
# per-stream link look-ups and `archived_after` for one stream.
ARCHIVE_MIGRATION: Final = (
    """
CREATE TABLE {s}.stream_cuts (
    stream_id text PRIMARY KEY,
    truncated_before bigint NOT NULL CHECK (truncated_before > 1),
    cut_position bigint NOT NULL
);
CREATE INDEX erased_links_stream ON {s}.erased_links (stream_id, version);
"""
    + _derived(
        CHAIN_MIGRATION,
        "CREATE OR REPLACE FUNCTION {s}.append_events(",
        "CREATE OR REPLACE FUNCTION {s}.delete_stream(",
        [
            (
                "SELECT coalesce(max(e.version), 0) INTO head",
                "SELECT coalesce(max(e.version), (SELECT c.truncated_before - 1 FROM "
                "{s}.stream_cuts c WHERE c.stream_id = p_stream), 0) INTO head",
            )
        ],
    )
    + _derived(
        CHAIN_MIGRATION,
        "CREATE OR REPLACE FUNCTION {s}.delete_stream(",
        "DO $do$",
        [
            (
                "VALUES (p_stream, coalesce(v_head, 0), coalesce(v_head_position, 0),",
                "VALUES (p_stream,\n"
                "        coalesce(v_head, (SELECT c.truncated_before - 1\n"
                "            FROM {s}.stream_cuts c WHERE c.stream_id = p_stream), 0),\n"
                "        coalesce(v_head_position, (SELECT c.cut_position\n"
                "            FROM {s}.stream_cuts c WHERE c.stream_id = p_stream), 0),",
            )
        ],
    )
    + _derived(
        BATCH_SET_MIGRATION,
        "CREATE OR REPLACE FUNCTION {s}.append_batch(",
        "$fn$;\n",
        [
            (
                "array_agg(coalesce(h.version, 0) ORDER BY a.n)",
                "array_agg(coalesce(h.version, c.truncated_before - 1, 0) ORDER BY a.n)",
            ),
            (
                "      LEFT JOIN {s}.tombstones t ON t.stream_id = a.s\n",
                "      LEFT JOIN {s}.tombstones t ON t.stream_id = a.s\n"
                "      LEFT JOIN {s}.stream_cuts c ON c.stream_id = a.s\n",
            ),
        ],
    )
    + "$fn$;\n"
)


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
        "hash chain: digest and link per event, erased links kept, existing events hashed",
        CHAIN_MIGRATION,
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
    ("group commit: append_batch(), many appends in one call under one lock", BATCH_MIGRATION),
    (
        "group commit, set-based: append_batch() with one look-up per kind and one INSERT",
        BATCH_SET_MIGRATION,
    ),
    (
        "archiving: stream cuts (truncate-before); heads read through a cut",
        ARCHIVE_MIGRATION,
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
        raise StoreRefused(
            f"schema {names.schema!r} was written by a newer hivelog (schema version {current}; "
            f"this one knows up to {newest}); upgrade hivelog. Nothing was changed"
        )
    applied_now = 0
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, $2)", MIGRATE_LOCK_CLASS, names.lock_key
        )
        # Under the lock, not before it: a node starting at the same moment may have
        # committed the first migration since `current` was read, and its tables then
        # looked like a foreign application's (StoreRefused for one of two fresh nodes).
        if not await _has_migrations_table(conn, names) and await has_foreign_tables(conn, names):
            raise StoreRefused(
                f"schema {names.schema!r} holds tables but no hivelog schema_migrations: "
                "not a hivelog log; nothing was changed (pick another ?schema=)"
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
            raise StoreRefused(
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


async def _has_migrations_table(conn: Any, names: SchemaNames) -> bool:
    """Whether schema_migrations exists (asked without an error, which would abort the
    migration's transaction)."""
    found = await conn.fetchval("SELECT to_regclass($1)", f"{names.q}.schema_migrations")
    return found is not None


async def _current_version(conn: Any, names: SchemaNames) -> int:
    try:
        value = await conn.fetchval(f"SELECT max(version) FROM {names.q}.schema_migrations")
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return 0
    return int(value or 0)


async def has_foreign_tables(conn: Any, names: SchemaNames) -> bool:
    """Whether the schema holds any table (for a schema without hivelog's migrations)."""
    found = await conn.fetchval(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", names.schema
    )
    return bool(found)


async def current_version(conn: Any, names: SchemaNames) -> int:
    """The schema's migration version (0 when there is none yet); read-only."""
    return await _current_version(conn, names)
