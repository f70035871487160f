"""Consumer groups on PostgreSQL: any node serves any group.

A claim locks the group's row (`FOR UPDATE`) for its transaction, so claims on
one group from every node are serialised: two nodes can never hand out the same
delivery, nor move the cursor past each other. Acks and nacks touch only their
delivery rows (`FOR UPDATE` on the row for a nack's read-then-write) and are
committed before they are answered (every connection has synchronous_commit=on).
Cursor safety: positions are gapless and commit-ordered (postgres.py), and the
head is read before the events, so everything at or below it is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .postgres import EVENT_COLUMNS
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


class PostgresSubscriptions(Subscriptions):
    def __init__(self, pool: Any, schema_q: str) -> None:
        self._pool = pool
        self._q = schema_q
        self._g = f"{schema_q}.subscription_groups"
        self._d = f"{schema_q}.subscription_deliveries"

    async def _events_at(self, conn: Any, positions: Sequence[int]) -> dict[int, RecordedEvent]:
        rows = await conn.fetch(
            f"SELECT {EVENT_COLUMNS} FROM {self._q}.events WHERE position = ANY($1::bigint[])",
            list(positions),
        )
        return {row[2]: RecordedEvent._make(row) for row in rows}

    async def put_group(self, name: str, settings: GroupSettings, start_after: int | None) -> bool:
        validate_group_name(name)
        validate_start_after(start_after)
        raw = settings.to_json().decode()
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await conn.execute(
                f"UPDATE {self._g} SET settings = $2, updated_at = now() WHERE name = $1",
                name,
                raw,
            )
            if updated != "UPDATE 0":
                return False
            cursor = start_after
            if cursor is None:
                cursor = await conn.fetchval(self._sql_head())
            inserted = await conn.execute(
                f"INSERT INTO {self._g} (name, settings, cursor) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO NOTHING",
                name,
                raw,
                cursor,
            )
            if inserted == "INSERT 0 1":
                return True
            # Another node created it meanwhile: this PUT is an update of that group.
            await conn.execute(
                f"UPDATE {self._g} SET settings = $2, updated_at = now() WHERE name = $1",
                name,
                raw,
            )
            return False

    def _sql_head(self) -> str:
        return (
            f"SELECT greatest((SELECT coalesce(max(position), 0) FROM {self._q}.events), "
            f"erased_up_to) FROM {self._q}.log_state"
        )

    def _sql_group(self, where: str) -> str:
        return (
            f"SELECT g.name, g.settings, g.cursor, "
            f"(SELECT count(*) FROM {self._d} d WHERE d.group_name = g.name "
            "AND d.state = 'ready'), "
            f"(SELECT count(*) FROM {self._d} d WHERE d.group_name = g.name "
            "AND d.state = 'inflight'), "
            f"(SELECT count(*) FROM {self._d} d WHERE d.group_name = g.name "
            "AND d.state = 'parked'), "
            f"(SELECT min(position) FROM {self._d} d WHERE d.group_name = g.name "
            "AND d.state IN ('ready', 'inflight')) "
            f"FROM {self._g} g {where} ORDER BY g.name"
        )

    @staticmethod
    def _group(row: Any) -> Group:
        name, settings, cursor, ready, in_flight, parked, oldest = row
        return Group(
            name, GroupSettings.from_json(settings), cursor, ready, in_flight, parked, oldest
        )

    async def get_group(self, name: str) -> Group | None:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(self._sql_group("WHERE g.name = $1"), name)
        return None if row is None else self._group(row)

    async def list_groups(self) -> list[Group]:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch(self._sql_group(""))
        return [self._group(row) for row in rows]

    async def delete_group(self, name: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock the group first: a claim in flight commits its new rows before we
            # delete them, so no orphan deliveries outlive the group.
            if await self._lock_group(conn, name) is None:
                return False
            await conn.execute(f"DELETE FROM {self._d} WHERE group_name = $1", name)
            await conn.execute(f"DELETE FROM {self._g} WHERE name = $1", name)
        return True

    async def _lock_group(self, conn: Any, name: str) -> tuple[GroupSettings, int] | None:
        row = await conn.fetchrow(
            f"SELECT settings, cursor FROM {self._g} WHERE name = $1 FOR UPDATE", name
        )
        return None if row is None else (GroupSettings.from_json(row[0]), int(row[1]))

    async def _fill(
        self, conn: Any, name: str, settings: GroupSettings, cursor: int, want: int
    ) -> tuple[int, list[Pending]]:
        """Delivery rows for matching events after the cursor; returns the new cursor too."""
        head = int(await conn.fetchval(self._sql_head()))
        upper = min(head, cursor + SCAN_WINDOW)
        if upper <= cursor:
            return cursor, []
        where = ["position > $1", "position <= $2", "NOT starts_with(stream_id, '$')"]
        args: list[Any] = [cursor, upper]
        if settings.types is not None:
            args.append(list(settings.types))
            where.append(f"type = ANY(${len(args)}::text[])")
        if settings.sessions is not None:
            args.append(list(settings.sessions))
            where.append(f"stream_id = ANY(${len(args)}::text[])")
        args.append(want)
        rows = await conn.fetch(
            f"SELECT position, stream_id FROM {self._q}.events WHERE {' AND '.join(where)} "
            f"ORDER BY position LIMIT ${len(args)}",
            *args,
        )
        new_cursor = rows[-1][0] if len(rows) == want else upper
        if rows:
            await conn.execute(
                f"INSERT INTO {self._d} (group_name, position, session_id, delivery_id, attempt, "
                "handouts, state, deadline) SELECT $1, p, s, '', 0, 0, 'ready', 0 "
                "FROM unnest($2::bigint[], $3::text[]) AS u(p, s) ON CONFLICT DO NOTHING",
                name,
                [r[0] for r in rows],
                [r[1] for r in rows],
            )
        await conn.execute(f"UPDATE {self._g} SET cursor = $2 WHERE name = $1", name, new_cursor)
        return new_cursor, [Pending(r[0], r[1], READY, 0, 0.0) for r in rows]

    async def claim(
        self, name: str, worker: str, limit: int, now: float, rules: Rules
    ) -> list[Delivery] | None:
        async with self._pool.acquire() as conn, conn.transaction():
            group = await self._lock_group(conn, name)
            if group is None:
                return None
            settings, cursor = group
            pending = [
                Pending(*row)
                for row in await conn.fetch(
                    f"SELECT position, session_id, state, attempt, deadline FROM {self._d} "
                    "WHERE group_name = $1 AND state IN ('ready', 'inflight') ORDER BY position",
                    name,
                )
            ]
            in_flight = sum(1 for p in pending if p.state == INFLIGHT and p.deadline > now)
            target = min(rules.buffer_target(settings, in_flight, limit), MAX_BUFFER)
            if len(pending) < target:
                cursor, fresh = await self._fill(
                    conn, name, settings, cursor, target - len(pending)
                )
                pending.extend(fresh)
            plan = rules.plan_claim(settings, pending, now, limit)
            if held_up(plan, settings, in_flight, len(pending), target):  # look further
                _, fresh = await self._fill(conn, name, settings, cursor, MAX_BUFFER - len(pending))
                if fresh:
                    pending.extend(fresh)
                    plan = rules.plan_claim(settings, pending, now, limit)
            if plan.park:
                await conn.execute(
                    f"UPDATE {self._d} AS d SET state = 'parked', reason = u.r, worker = NULL "
                    "FROM unnest($2::bigint[], $3::text[]) AS u(p, r) "
                    "WHERE d.group_name = $1 AND d.position = u.p",
                    name,
                    [p for p, _ in plan.park],
                    [r for _, r in plan.park],
                )
            if not plan.claim:
                return []
            events = await self._events_at(conn, plan.claim)
            gone = [p for p in plan.claim if p not in events]
            if gone:
                await conn.execute(
                    f"DELETE FROM {self._d} WHERE group_name = $1 AND position = ANY($2::bigint[])",
                    name,
                    gone,
                )
            taken = [p for p in plan.claim if p in events]
            rows = await conn.fetch(
                f"UPDATE {self._d} SET state = 'inflight', attempt = attempt + 1, "
                "handouts = handouts + 1, deadline = $3, worker = $4, "
                "delivery_id = position || ':' || (handouts + 1) || ':' "
                "|| lpad(to_hex(floor(random() * 4294967296)::bigint), 8, '0') "  # DELIVERY_TAG
                "WHERE group_name = $1 AND position = ANY($2::bigint[]) "
                "RETURNING position, attempt, delivery_id",
                name,
                taken,
                now + settings.ack_timeout_seconds,
                worker,
            )
        out = {r[0]: Delivery(r[2], r[1], events[r[0]]) for r in rows}
        return [out[p] for p in taken if p in out]

    async def ack(self, name: str, delivery_ids: Sequence[str]) -> list[str] | None:
        ids = list(dict.fromkeys(delivery_ids))
        valid = [(t, parsed[0]) for t in ids if (parsed := parse_delivery_id(t)) is not None]
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(f"SELECT 1 FROM {self._g} WHERE name = $1", name):
                return None
            rows = await conn.fetch(
                f"DELETE FROM {self._d} AS d USING unnest($2::text[], $3::bigint[]) AS u(i, p) "
                "WHERE d.group_name = $1 AND d.position = u.p AND d.delivery_id = u.i "
                "AND d.state = 'inflight' RETURNING d.delivery_id",
                name,
                [t for t, _ in valid],
                [p for _, p in valid],
            )
        done = {r[0] for r in rows}
        return [t for t in ids if t not in done]

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
        unknown = []
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"SELECT settings FROM {self._g} WHERE name = $1", name)
            if row is None:
                return None
            settings = GroupSettings.from_json(row[0])
            for text in ids:
                parsed = parse_delivery_id(text)
                found = None
                if parsed is not None:
                    found = await conn.fetchrow(
                        f"SELECT attempt FROM {self._d} WHERE group_name = $1 AND position = $2 "
                        "AND delivery_id = $3 AND state = 'inflight' FOR UPDATE",
                        name,
                        parsed[0],
                        text,
                    )
                if parsed is None or found is None:
                    unknown.append(text)
                    continue
                position, attempt = parsed[0], int(found[0])
                outcome = "skip" if action == "skip" else PARKED
                if action == "retry":
                    outcome = rules.after_failure(settings, attempt)
                if outcome == "skip":
                    await conn.execute(
                        f"DELETE FROM {self._d} WHERE group_name = $1 AND position = $2",
                        name,
                        position,
                    )
                elif outcome == READY:
                    await conn.execute(
                        f"UPDATE {self._d} SET state = 'ready', deadline = $3, worker = NULL, "
                        "reason = $4 WHERE group_name = $1 AND position = $2",
                        name,
                        position,
                        now + delay,
                        reason,
                    )
                else:
                    why = reason if action == "park" else f"{reason} (after {attempt} attempts)"
                    await conn.execute(
                        f"UPDATE {self._d} SET state = 'parked', worker = NULL, reason = $3 "
                        "WHERE group_name = $1 AND position = $2",
                        name,
                        position,
                        why,
                    )
        return unknown

    async def parked(self, name: str, limit: int) -> list[ParkedMessage] | None:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            if not await conn.fetchval(f"SELECT 1 FROM {self._g} WHERE name = $1", name):
                return None
            rows = await conn.fetch(
                f"SELECT position, attempt, reason FROM {self._d} WHERE group_name = $1 "
                "AND state = 'parked' ORDER BY position LIMIT $2",
                name,
                limit,
            )
            events = await self._events_at(conn, [r[0] for r in rows])
        return [ParkedMessage(p, a, r or "", events.get(p)) for p, a, r in rows]

    async def replay_parked(self, name: str, now: float) -> int | None:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(f"SELECT 1 FROM {self._g} WHERE name = $1", name):
                return None
            done = await conn.execute(
                f"UPDATE {self._d} SET state = 'ready', attempt = 0, deadline = $2, "
                "reason = NULL WHERE group_name = $1 AND state = 'parked'",
                name,
                now,
            )
        return int(done.split()[-1])
