"""Projection checkpoints on SQLite, written in parts so no one transaction is large.

SQLite has one writer. A checkpoint of a big catalogue (3.7 MB for 1,000 sessions with
10 timers each, 37 MB for 10,000) written as one row held that writer for the whole
write, and, with `secure_delete` on, for zeroing the previous row's pages as well:
every append and timer fire due meanwhile waited behind it (0.8-1 s at 10,000
sessions). A state larger than `PART_BYTES` is therefore written as parts, each in its
own group-commit transaction alongside whatever appends are queued; a last small
transaction publishes it (the `checkpoints` row names the parts' generation and count)
and only then are the previous generation's parts deleted, one per transaction.

A crash or a cancelled save at any step leaves the published checkpoint as it was:
unpublished parts are orphans that the next save deletes. Readers take the row and its
parts in one statement (`STATE_SQL`), so a save publishing meanwhile cannot mix two
generations; `join_parts` checks count and length and reports a mismatch as no
checkpoint (a projection then folds from the log, which is always correct).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sqlite_batch import BatchContext
from .types import EventStoreError

PART_BYTES = 256 * 1024  # ~64 pages: a part's transaction stays a few milliseconds
STALE_PARTS_PER_JOB = 1  # superseded parts deleted (and zeroed: secure_delete) per transaction

# Migration 6: a published checkpoint keeps its state in `checkpoints.state` (parts = 0,
# as before) or in `parts` rows of `checkpoint_parts` under its generation.
MIGRATION = """
ALTER TABLE checkpoints ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE checkpoint_parts (
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    part INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (name, generation, part)
);
"""

# One statement, one snapshot: (position, state, parts, part bytes or NULL) per part.
STATE_SQL = (
    "SELECT c.position, c.state, c.parts, p.bytes FROM checkpoints c "
    "LEFT JOIN checkpoint_parts p ON c.parts > 0 AND p.name = c.name "
    "AND p.generation = c.generation WHERE c.name = ? ORDER BY p.part"
)

# The same rows from a file before migration 6 (read-only tools open any version).
UNPARTED_STATE_SQL = "SELECT position, state, 0, NULL FROM checkpoints WHERE name = ?"


def split(state: bytes, part_bytes: int = PART_BYTES) -> list[bytes]:
    """The parts a state is written as; none when it fits in the row itself."""
    if len(state) <= part_bytes:
        return []
    return [state[i : i + part_bytes] for i in range(0, len(state), part_bytes)]


def join_parts(rows: Sequence[Sequence[Any]]) -> tuple[int, bytes] | None:
    """(position, state) from `STATE_SQL`'s rows; None when there is no checkpoint or
    its parts are not all there (only a save from another process can cause that)."""
    if not rows:
        return None
    position, inline, parts = rows[0][0], rows[0][1], rows[0][2]
    if not parts:
        return int(position), bytes(inline)
    pieces = [row[3] for row in rows]
    if len(pieces) != parts or any(piece is None for piece in pieces):
        return None
    return int(position), b"".join(pieces)


def write_part(ctx: BatchContext, name: str, generation: int, part: int, data: bytes) -> None:
    ctx.conn.execute(
        "INSERT INTO checkpoint_parts (name, generation, part, bytes) VALUES (?, ?, ?, ?)",
        (name, generation, part, data),
    )


def publish(
    ctx: BatchContext,
    name: str,
    position: int,
    state: bytes,
    generation: int,
    parts: list[bytes],
) -> None:
    """Make the checkpoint current: the row, pointing at its parts when it has them.
    Refused when the parts written are not all there (another process deleted them)."""
    conn = ctx.conn
    if parts:
        count, size = conn.execute(
            "SELECT count(*), coalesce(sum(length(bytes)), 0) FROM checkpoint_parts "
            "WHERE name = ? AND generation = ?",
            (name, generation),
        ).fetchone()
        if count != len(parts) or size != len(state):
            raise EventStoreError(
                f"checkpoint {name!r}: {count} of {len(parts)} parts found; "
                "another process saved the same checkpoint meanwhile (not saved)"
            )
    conn.execute(
        "INSERT INTO checkpoints (name, position, state, saved_at, parts, generation) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "position = excluded.position, state = excluded.state, saved_at = excluded.saved_at, "
        "parts = excluded.parts, generation = excluded.generation",
        (name, position, b"" if parts else state, ctx.now_us, len(parts), generation),
    )


def drop_stale(ctx: BatchContext, name: str, generation: int) -> int:
    """Delete up to STALE_PARTS_PER_JOB parts of `name` not of the current
    `generation`; returns how many went."""
    return ctx.conn.execute(
        "DELETE FROM checkpoint_parts WHERE rowid IN (SELECT rowid FROM checkpoint_parts "
        "WHERE name = ? AND generation != ? LIMIT ?)",
        (name, generation, STALE_PARTS_PER_JOB),
    ).rowcount
