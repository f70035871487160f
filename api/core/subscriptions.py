"""Durable consumer groups: the rules (pure) and the service the HTTP routes call.

The rules decide, from a group's outstanding deliveries, what a claim may hand
out now: nothing past `max_in_flight`; a delivery whose ack deadline passed goes
out again with attempt + 1, or is parked once it has used up `max_retries`; with
`ordering: "session"` a session's event waits while an earlier one of the same
session is in flight or waiting for a retry (parked ones no longer hold it up), and
a session never has two deliveries out at once.
The store applies the decision in one transaction (eventstore/subscriptions.py).

The service adds the long poll: a claim that finds nothing sleeps on the store's
doorbell (rung by appends, also other nodes' via LISTEN on PostgreSQL) and on
this process's own bell (rung by acks, nacks and replays, which can free work),
re-reading the log head before claiming again, and claims at least once per
`poll_seconds` so timeouts and other nodes' acks are noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from api.core.clock import Clock
from eventstore import EventStore
from eventstore.base import Doorbell
from eventstore.subscriptions import (
    INFLIGHT,
    PARKED,
    READY,
    ClaimPlan,
    Delivery,
    Group,
    GroupSettings,
    NackAction,
    ParkedMessage,
    Pending,
    Subscriptions,
)
from projections.errors import Invalid, NotFound

MAX_WAIT_SECONDS = 60
# Scan windows (SCAN_WINDOW positions each) one claim request may walk through at once.
MAX_SCANS_PER_CLAIM = 50


def plan_claim(
    settings: GroupSettings, pending: Sequence[Pending], now: float, limit: int
) -> ClaimPlan:
    """Which outstanding deliveries go out now (oldest first) and which are parked."""
    in_flight = sum(1 for p in pending if p.state == INFLIGHT and p.deadline > now)
    budget = max(0, min(limit, settings.max_in_flight - in_flight))
    by_session = settings.ordering == "session"
    claim: list[int] = []
    park: list[tuple[int, str]] = []
    # Sessions that may not get a delivery now: one is out (even a later one, after a
    # replay of an earlier parked event), or an earlier one is waiting.
    held = {p.session_id for p in pending if p.state == INFLIGHT and p.deadline > now}
    for row in sorted(pending, key=lambda p: p.position):
        timed_out = row.state == INFLIGHT and row.deadline <= now
        if timed_out and row.attempt > settings.max_retries:
            park.append((row.position, f"not acked within the timeout in {row.attempt} attempts"))
            continue
        if by_session and row.session_id in held:
            continue
        if by_session:
            held.add(row.session_id)
        if row.deadline > now and row.state in (INFLIGHT, READY):
            continue  # out and not timed out, or waiting out a retry delay
        if len(claim) < budget:
            claim.append(row.position)
    return ClaimPlan(claim, park)


def after_failure(settings: GroupSettings, attempt: int) -> str:
    """A failed delivery is retried until it has had `max_retries` retries, then parked."""
    return PARKED if attempt > settings.max_retries else READY


def buffer_target(settings: GroupSettings, in_flight: int, limit: int) -> int:
    """Rows kept materialised: what is out, plus room to look past blocked sessions."""
    lookahead = max(2 * limit, 200) if settings.ordering == "none" else max(4 * limit, 500)
    return in_flight + lookahead


class GroupRules:
    """The pure rules above, as the object the store backends call."""

    def plan_claim(
        self, settings: GroupSettings, pending: Sequence[Pending], now: float, limit: int
    ) -> ClaimPlan:
        return plan_claim(settings, pending, now, limit)

    def after_failure(self, settings: GroupSettings, attempt: int) -> str:
        return after_failure(settings, attempt)

    def buffer_target(self, settings: GroupSettings, in_flight: int, limit: int) -> int:
        return buffer_target(settings, in_flight, limit)


RULES = GroupRules()


def group_not_found(name: str) -> NotFound:
    return NotFound(f"Subscription group '{name}' not found")


@dataclass(frozen=True, slots=True)
class GroupView:
    group: Group
    head: int

    @property
    def lag(self) -> int:
        """Log positions after the checkpoint (an upper bound on unhandled matching events)."""
        return max(0, self.head - self.group.checkpoint)


async def _first_of(events: Sequence[asyncio.Event], seconds: float) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class SubscriptionService:
    """Consumer groups of one store; `clock` times ack deadlines and retry delays."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        poll_seconds: float | None = None,
        closing: asyncio.Event | None = None,
    ) -> None:
        """`closing`: set on shutdown; long polls then end at once with no messages,
        so uvicorn is not kept waiting for them (as the SSE hub's streams)."""
        self.store = store
        self.closing = closing or asyncio.Event()
        self.tables: Subscriptions = store.subscriptions
        self.clock = clock
        self.poll_seconds = store.poll_seconds if poll_seconds is None else poll_seconds
        self._bell = Doorbell()
        self._changes = 0

    def _changed(self) -> None:
        self._changes += 1
        self._bell.ring()

    async def put(self, name: str, settings: GroupSettings, start_after: int | None) -> bool:
        """Create or update a group. A start past the log's head is refused: the group
        would deliver nothing until the log grew that far (a typo, or another log's
        checkpoint), while `GET` showed it healthy with lag 0."""
        if start_after is not None and start_after > (head := await self.store.head_position()):
            raise Invalid(f"'from' is past the log's head ({head}): nothing would be delivered")
        created = await self.tables.put_group(name, settings, start_after)
        self._changed()
        return created

    async def view(self, name: str) -> GroupView:
        group = await self.tables.get_group(name)
        if group is None:
            raise group_not_found(name)
        return GroupView(group, await self.store.head_position())

    async def views(self) -> list[GroupView]:
        head = await self.store.head_position()
        return [GroupView(g, head) for g in await self.tables.list_groups()]

    async def delete(self, name: str) -> None:
        if not await self.tables.delete_group(name):
            raise group_not_found(name)

    async def claim(
        self, name: str, worker: str, limit: int, wait_seconds: float = 0.0
    ) -> list[Delivery]:
        """Up to `limit` deliveries; waits up to `wait_seconds` while there are none."""
        deadline = time.monotonic() + min(wait_seconds, MAX_WAIT_SECONDS)
        scans, last_cursor = 0, -1
        while True:
            store_ticket, own_ticket = self.store.doorbell.ticket(), self._bell.ticket()
            seen = (await self.store.head_position(), self._changes)
            got = await self.tables.claim(name, worker, limit, self.clock.now(), RULES)
            if got is None:
                raise group_not_found(name)
            if not got and scans < MAX_SCANS_PER_CLAIM:
                cursor = await self._unscanned(name, seen[0])
                if cursor is not None and cursor != last_cursor:  # only while it moves
                    scans, last_cursor = scans + 1, cursor
                    continue
            if got or time.monotonic() >= deadline or self.closing.is_set():
                return got
            # Nothing now: sleep until the log grows or this node frees work, or a poll.
            until = min(deadline, time.monotonic() + self.poll_seconds)
            while (remaining := until - time.monotonic()) > 0:
                await _first_of((store_ticket, own_ticket, self.closing), remaining)
                if self.closing.is_set():
                    return []
                store_ticket, own_ticket = self.store.doorbell.ticket(), self._bell.ticket()
                if (await self.store.head_position(), self._changes) != seen:
                    break

    async def _unscanned(self, name: str, head: int) -> int | None:
        """The group's cursor when a claim that found nothing stopped at its scan window,
        not at the head (else None); nothing ready is buffered, so claim again.

        A claim looks at most SCAN_WINDOW positions past the cursor: with a rare type
        after 20,000 others it answered no messages while one was ready, and a long
        poll then slept a poll interval per window."""
        group = await self.tables.get_group(name)
        if group is None or group.ready or group.cursor >= head:
            return None
        return group.cursor

    async def ack(self, name: str, delivery_ids: Sequence[str]) -> tuple[int, list[str]]:
        unknown = await self.tables.ack(name, delivery_ids)
        if unknown is None:
            raise group_not_found(name)
        acked = len(set(delivery_ids)) - len(unknown)
        if acked:
            self._changed()
        return acked, unknown

    async def nack(
        self,
        name: str,
        delivery_ids: Sequence[str],
        action: NackAction,
        reason: str,
        delay: float = 0.0,
    ) -> tuple[int, list[str]]:
        now = self.clock.now()
        unknown = await self.tables.nack(name, delivery_ids, action, reason, now, delay, RULES)
        if unknown is None:
            raise group_not_found(name)
        self._changed()
        return len(set(delivery_ids)) - len(unknown), unknown

    async def parked(self, name: str, limit: int) -> list[ParkedMessage]:
        found = await self.tables.parked(name, limit)
        if found is None:
            raise group_not_found(name)
        return found

    async def replay(self, name: str) -> int:
        count = await self.tables.replay_parked(name, self.clock.now())
        if count is None:
            raise group_not_found(name)
        self._changed()
        return count
