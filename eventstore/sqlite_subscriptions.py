"""Consumer groups on SQLite: every change is a job in the store's group-commit writer.

Claims, acks and nacks run in the writer thread inside the batch transaction, so
they are serialised with each other and with appends (one writer), and an ack's
future resolves only after its COMMIT (synchronous=FULL): an answered ack is durable.
The log is read in the same transaction, so the cursor can never pass an event
the claim did not see.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .sqlite_batch import BatchContext, Submit
from .subscriptions import (
    INFLIGHT,
    MAX_BUFFER,
    PARKED,
    READY,
    SCAN_WINDOW,
    Delivery,
    Group,
    GroupSettings,
    NackAction,
    ParkedMessage,
    Pending,
    Rules,
    Subscriptions,
    held_up,
    parse_delivery_id,
    validate_group_name,
    validate_start_after,
)
from .types import RecordedEvent

EVENT_COLUMNS = "stream_id, version, position, event_id, type, data, metadata, recorded_at"
T = "subscription_deliveries"


def _in(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _group_row(conn: sqlite3.Connection, name: str) -> tuple[GroupSettings, int] | None:
    row = conn.execute(
        "SELECT settings, cursor FROM subscription_groups WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else (GroupSettings.from_json(row[0]), int(row[1]))


def _events_at(conn: sqlite3.Connection, positions: Sequence[int]) -> dict[int, RecordedEvent]:
    found: dict[int, RecordedEvent] = {}
    for start in range(0, len(positions), 500):
        chunk = positions[start : start + 500]
        for row in conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE position IN ({_in(chunk)})", chunk
        ):
            event = RecordedEvent._make(row)
            found[event.position] = event
    return found


def _fill(
    conn: sqlite3.Connection, name: str, settings: GroupSettings, cursor: int, want: int, head: int
) -> tuple[int, list[Pending]]:
    """Delivery rows for matching events after the cursor; returns the new cursor too."""
    upper = min(head, cursor + SCAN_WINDOW)
    if upper <= cursor:
        return cursor, []
    where = ["position > ?", "position <= ?", "substr(stream_id, 1, 1) != '$'"]
    params: list[Any] = [cursor, upper]
    if settings.types is not None:
        where.append(f"type IN ({_in(settings.types)})")
        params.extend(settings.types)
    if settings.sessions is not None:
        where.append(f"stream_id IN ({_in(settings.sessions)})")
        params.extend(settings.sessions)
    params.append(want)
    rows = conn.execute(
        f"SELECT position, stream_id FROM events WHERE {' AND '.join(where)} "
        "ORDER BY position LIMIT ?",
        params,
    ).fetchall()
    new_cursor = rows[-1][0] if len(rows) == want else upper
    if rows:
        conn.executemany(
            f"INSERT OR IGNORE INTO {T} (group_name, position, session_id, delivery_id, attempt, "
            "handouts, state, deadline) VALUES (?, ?, ?, '', 0, 0, 'ready', 0)",
            [(name, p, s) for p, s in rows],
        )
    conn.execute("UPDATE subscription_groups SET cursor = ? WHERE name = ?", (new_cursor, name))
    return new_cursor, [Pending(p, s, READY, 0, 0.0) for p, s in rows]


class SQLiteSubscriptions(Subscriptions):
    """Given the store's `_submit` (writer jobs), not the store itself (no import cycle)."""

    def __init__(self, submit: Submit) -> None:
        self._submit = submit

    async def put_group(self, name: str, settings: GroupSettings, start_after: int | None) -> bool:
        validate_group_name(name)
        validate_start_after(start_after)

        def job(ctx: BatchContext) -> bool:
            updated = ctx.conn.execute(
                "UPDATE subscription_groups SET settings = ?, updated_at = ? WHERE name = ?",
                (settings.to_json(), ctx.now_us, name),
            ).rowcount
            if updated:
                return False
            cursor = ctx.last_position if start_after is None else start_after
            ctx.conn.execute(
                "INSERT INTO subscription_groups (name, settings, cursor, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, settings.to_json(), cursor, ctx.now_us, ctx.now_us),
            )
            return True

        return await self._submit(job)

    def _group_from(self, name: str, settings: bytes, cursor: int, counts: list[Any]) -> Group:
        by_state = {state: (n, low) for state, n, low in counts}
        lows = [by_state[s][1] for s in (READY, INFLIGHT) if s in by_state]
        return Group(
            name,
            GroupSettings.from_json(settings),
            cursor,
            ready=by_state.get(READY, (0, None))[0],
            in_flight=by_state.get(INFLIGHT, (0, None))[0],
            parked=by_state.get(PARKED, (0, None))[0],
            oldest_pending=min(lows) if lows else None,
        )

    async def get_group(self, name: str) -> Group | None:
        def job(ctx: BatchContext) -> Group | None:
            # In the writer: group row and counts from one snapshot.
            row = ctx.conn.execute(
                "SELECT settings, cursor FROM subscription_groups WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return None
            counts = ctx.conn.execute(
                f"SELECT state, count(*), min(position) FROM {T} WHERE group_name = ? "
                "GROUP BY state",
                (name,),
            ).fetchall()
            return self._group_from(name, row[0], row[1], counts)

        return await self._submit(job)

    async def list_groups(self) -> list[Group]:
        def job(ctx: BatchContext) -> list[Group]:
            groups = []
            for name, settings, cursor in ctx.conn.execute(
                "SELECT name, settings, cursor FROM subscription_groups ORDER BY name"
            ).fetchall():
                counts = ctx.conn.execute(
                    f"SELECT state, count(*), min(position) FROM {T} WHERE group_name = ? "
                    "GROUP BY state",
                    (name,),
                ).fetchall()
                groups.append(self._group_from(name, settings, cursor, counts))
            return groups

        return await self._submit(job)

    async def delete_group(self, name: str) -> bool:
        def job(ctx: BatchContext) -> bool:
            ctx.conn.execute(f"DELETE FROM {T} WHERE group_name = ?", (name,))
            gone = ctx.conn.execute(
                "DELETE FROM subscription_groups WHERE name = ?", (name,)
            ).rowcount
            return bool(gone)

        return await self._submit(job)

    async def claim(
        self, name: str, worker: str, limit: int, now: float, rules: Rules
    ) -> list[Delivery] | None:
        def job(ctx: BatchContext) -> list[Delivery] | None:
            conn = ctx.conn
            group = _group_row(conn, name)
            if group is None:
                return None
            settings, cursor = group
            pending = [
                Pending(*row)
                for row in conn.execute(
                    f"SELECT position, session_id, state, attempt, deadline FROM {T} "
                    "WHERE group_name = ? AND state IN ('ready', 'inflight') ORDER BY position",
                    (name,),
                )
            ]
            in_flight = sum(1 for p in pending if p.state == INFLIGHT and p.deadline > now)
            target = min(rules.buffer_target(settings, in_flight, limit), MAX_BUFFER)
            if len(pending) < target:
                cursor, fresh = _fill(
                    conn, name, settings, cursor, target - len(pending), ctx.last_position
                )
                pending.extend(fresh)
            plan = rules.plan_claim(settings, pending, now, limit)
            if held_up(plan, settings, in_flight, len(pending), target):  # look further
                _, fresh = _fill(
                    conn, name, settings, cursor, MAX_BUFFER - len(pending), ctx.last_position
                )
                if fresh:
                    pending.extend(fresh)
                    plan = rules.plan_claim(settings, pending, now, limit)
            if plan.park:
                conn.executemany(
                    f"UPDATE {T} SET state = 'parked', reason = ?, worker = NULL "
                    "WHERE group_name = ? AND position = ?",
                    [(reason, name, position) for position, reason in plan.park],
                )
            if not plan.claim:
                return []
            events = _events_at(conn, plan.claim)
            gone = [p for p in plan.claim if p not in events]
            if gone:
                conn.executemany(
                    f"DELETE FROM {T} WHERE group_name = ? AND position = ?",
                    [(name, p) for p in gone],
                )
            deadline = now + settings.ack_timeout_seconds
            taken = [p for p in plan.claim if p in events]  # erased sessions: nothing to deliver
            marked: dict[int, tuple[int, str]] = {}
            for start in range(0, len(taken), 500):
                chunk = taken[start : start + 500]
                for position, attempt, handed_out_as in conn.execute(
                    f"UPDATE {T} SET state = 'inflight', attempt = attempt + 1, "
                    "handouts = handouts + 1, deadline = ?, worker = ?, "
                    "delivery_id = position || ':' || (handouts + 1) || ':' "
                    "|| lower(hex(randomblob(4))) "  # DELIVERY_TAG
                    f"WHERE group_name = ? AND position IN ({_in(chunk)}) "
                    "RETURNING position, attempt, delivery_id",
                    (deadline, worker, name, *chunk),
                ):
                    marked[position] = (attempt, handed_out_as)
            return [Delivery(marked[p][1], marked[p][0], events[p]) for p in taken]

        return await self._submit(job)

    async def ack(self, name: str, delivery_ids: Sequence[str]) -> list[str] | None:
        ids = list(dict.fromkeys(delivery_ids))

        def job(ctx: BatchContext) -> list[str] | None:
            if _group_row(ctx.conn, name) is None:
                return None
            valid = [(parsed[0], t) for t in ids if (parsed := parse_delivery_id(t)) is not None]
            done: set[str] = set()
            for start in range(0, len(valid), 400):
                chunk = valid[start : start + 400]
                rows = ",".join("(?, ?)" * 1 for _ in chunk)
                done.update(
                    r[0]
                    for r in ctx.conn.execute(
                        f"DELETE FROM {T} WHERE group_name = ? AND state = 'inflight' "
                        f"AND (position, delivery_id) IN (VALUES {rows}) RETURNING delivery_id",
                        (name, *(v for pair in chunk for v in pair)),
                    )
                )
            return [t for t in ids if t not in done]

        return await self._submit(job)

    async def nack(
        self,
        name: str,
        delivery_ids: Sequence[str],
        action: NackAction,
        reason: str,
        now: float,
        delay: float,
        rules: Rules,
    ) -> list[str] | None:
        ids = list(dict.fromkeys(delivery_ids))

        def job(ctx: BatchContext) -> list[str] | None:
            conn = ctx.conn
            group = _group_row(conn, name)
            if group is None:
                return None
            settings = group[0]
            unknown = []
            for text in ids:
                parsed = parse_delivery_id(text)
                row = None
                if parsed is not None:
                    row = conn.execute(
                        f"SELECT attempt FROM {T} WHERE group_name = ? AND position = ? "
                        "AND delivery_id = ? AND state = 'inflight'",
                        (name, parsed[0], text),
                    ).fetchone()
                if parsed is None or row is None:
                    unknown.append(text)
                    continue
                position, attempt = parsed[0], int(row[0])
                outcome = "skip" if action == "skip" else PARKED
                if action == "retry":
                    outcome = rules.after_failure(settings, attempt)
                if outcome == "skip":
                    conn.execute(
                        f"DELETE FROM {T} WHERE group_name = ? AND position = ?", (name, position)
                    )
                elif outcome == READY:
                    conn.execute(
                        f"UPDATE {T} SET state = 'ready', deadline = ?, worker = NULL, "
                        "reason = ? WHERE group_name = ? AND position = ?",
                        (now + delay, reason, name, position),
                    )
                else:
                    why = reason if action == "park" else f"{reason} (after {attempt} attempts)"
                    conn.execute(
                        f"UPDATE {T} SET state = 'parked', worker = NULL, reason = ? "
                        "WHERE group_name = ? AND position = ?",
                        (why, name, position),
                    )
            return unknown

        return await self._submit(job)

    async def parked(self, name: str, limit: int) -> list[ParkedMessage] | None:
        def job(ctx: BatchContext) -> list[ParkedMessage] | None:
            if _group_row(ctx.conn, name) is None:
                return None
            rows = ctx.conn.execute(
                f"SELECT position, attempt, reason FROM {T} WHERE group_name = ? "
                "AND state = 'parked' ORDER BY position LIMIT ?",
                (name, limit),
            ).fetchall()
            events = _events_at(ctx.conn, [r[0] for r in rows])
            return [ParkedMessage(p, a, r or "", events.get(p)) for p, a, r in rows]

        return await self._submit(job)

    async def replay_parked(self, name: str, now: float) -> int | None:
        def job(ctx: BatchContext) -> int | None:
            if _group_row(ctx.conn, name) is None:
                return None
            return int(
                ctx.conn.execute(
                    f"UPDATE {T} SET state = 'ready', attempt = 0, deadline = ?, reason = NULL "
                    "WHERE group_name = ? AND state = 'parked'",
                    (now, name),
                ).rowcount
            )

        return await self._submit(job)
