"""Helpers for trigger tests: seed sessions straight into the log, drive a fake clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from api.core.clock import FakeClock
from api.core.scheduler import Scheduler
from api.core.service import SessionService
from eventstore import EventStore, NewEvent, RecordedEvent, open_store
from projections.envelope import decode, new_event, payload

COLONY = "demo_colony"


def timer(tid: str, task: str = "do it", **config: Any) -> dict[str, Any]:
    return {"id": tid, "trigger_type": "timer", "trigger_config": config, "task": task}


def webhook(tid: str, **config: Any) -> dict[str, Any]:
    return {"id": tid, "trigger_type": "webhook", "trigger_config": config, "task": "hook"}


def session_events(
    session_id: str,
    triggers: list[dict[str, Any]],
    now: float,
    *,
    colony: bool = True,
    activate: bool = True,
) -> list[NewEvent]:
    """What a session with a loaded colony looks like in the log (as the sessions
    feature writes it: created, colony loaded, each trigger available then active)."""
    events = [new_event("session_created", {"session_id": session_id}, timestamp=now)]
    cid = COLONY if colony else None
    if colony:
        loaded = {"colony_id": COLONY, "colony_name": COLONY, "agent_path": "/x", "node_count": 1}
        events.append(new_event("worker_colony_loaded", loaded, timestamp=now, colony_id=cid))
    for kind in ("trigger_available", "trigger_activated") if activate else ("trigger_available",):
        for t in triggers:
            body = {
                "trigger_id": t["id"],
                "trigger_type": t["trigger_type"],
                "trigger_config": t["trigger_config"],
                "name": t["id"],
                "task": t["task"],
            }
            events.append(new_event(kind, body, timestamp=now, colony_id=cid))
    return events


async def seed(
    store: EventStore, session_id: str, triggers: list[dict[str, Any]], now: float, **kw: Any
) -> int:
    result = await store.append(session_id, session_events(session_id, triggers, now, **kw))
    return result.last_position


async def append(
    store: EventStore, session_id: str, type: str, data: dict[str, Any], now: float
) -> int:
    result = await store.append(session_id, [new_event(type, data, timestamp=now)])
    return result.last_position


@dataclass
class Node:
    """One process's worth: store, session service, scheduler, on a shared fake clock."""

    store: EventStore
    service: SessionService
    scheduler: Scheduler
    clock: FakeClock

    async def settle(self, position: int | None = None) -> None:
        await self.service.wait_for(position or await self.store.head_position())
        await self.scheduler.idle()

    async def run_until(self, until_ms: int, max_steps: int = 100_000) -> int:
        """Jump from due time to due time (each fire exactly on time) up to `until_ms`."""
        steps = 0
        await self.settle()
        while steps < max_steps:
            due = self.scheduler.next_due_ms()
            if due is None or due > until_ms:
                break
            self.clock.set(max(due, self.clock.now_ms()))
            await self.settle()
            steps += 1
        if self.clock.now_ms() < until_ms:
            self.clock.set(until_ms)
            await self.settle()
        return steps

    async def events(self, session_id: str, types: set[str] | None = None) -> list[RecordedEvent]:
        evs = await self.store.read(session_id)
        return [e for e in evs if types is None or e.type in types]

    async def payloads(self, session_id: str, type: str) -> list[dict[str, Any]]:
        return [payload(decode(e)) for e in await self.events(session_id, {type})]


@contextlib.asynccontextmanager
async def node(db_url: str, clock: FakeClock, *, scheduler: bool = True) -> AsyncIterator[Node]:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    sched = Scheduler(service, clock)
    if scheduler:
        await sched.start()
    try:
        yield Node(store, service, sched, clock)
    finally:
        await sched.stop()
        await service.stop()
        await store.close()
