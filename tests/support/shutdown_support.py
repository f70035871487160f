"""SIGTERM a real `hivelog serve` under load and check nothing acknowledged was lost.

Load: `timers` active interval timers (two per session) seeded straight into the
log, firing every `interval_s`, plus `writers` HTTP clients creating sessions as
fast as they are answered. Used by tests/test_shutdown.py, and runnable for the
figures: `python -m tests.support.shutdown_support FOLDER ROUNDS [POSTGRES_URL]`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from eventstore import open_store
from projections.envelope import new_event
from tests.support.server import start_server

LOAD_SECONDS = 2.0


@dataclass
class Round:
    exit_code: int | None  # None: still running at the hang bound (then SIGKILLed)
    seconds: float  # from SIGTERM to exit
    acknowledged: int
    missing: int  # acknowledged sessions not in the log afterwards
    fired_during_load: int


async def seed_timers(db_url: str, timers: int, interval_s: float) -> None:
    """`timers` active timers, two per session, anchored now (they fire at once)."""
    store = await open_store(db_url)
    now = time.time()
    try:
        for s in range(timers // 2):
            sid = f"timer{s:05d}"
            events = [new_event("session_created", {"session_id": sid}, timestamp=now)]
            loaded = {"colony_id": "c", "colony_name": "c", "agent_path": "/c", "node_count": 1}
            events.append(new_event("worker_colony_loaded", loaded, timestamp=now, colony_id="c"))
            for t in range(2):
                body = {
                    "trigger_id": f"t{t}",
                    "trigger_type": "timer",
                    "trigger_config": {"interval_minutes": interval_s / 60},
                    "name": f"t{t}",
                    "task": "x",
                }
                for kind in ("trigger_available", "trigger_activated"):
                    events.append(new_event(kind, body, timestamp=now, colony_id="c"))
            await store.append(sid, events)
    finally:
        await store.close()


async def _write(base_url: str, writers: int, stop: asyncio.Event) -> list[str]:
    """Create sessions until `stop` or until the server goes; the ids answered 2xx."""
    acknowledged: list[str] = []

    async def writer(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                r = await client.post("/api/sessions", json={})
            except httpx.HTTPError:
                if stop.is_set():
                    return
                await asyncio.sleep(0.01)
                continue
            if 200 <= r.status_code < 300:
                acknowledged.append(r.json()["session_id"])

    limits = httpx.Limits(max_connections=writers)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as client:
        await asyncio.gather(*(writer(client) for _ in range(writers)))
    return acknowledged


async def _missing(db_url: str, session_ids: list[str]) -> int:
    store = await open_store(db_url)
    try:
        missing = 0
        for sid in session_ids:
            if await store.stream_info(sid) is None:
                missing += 1
        return missing
    finally:
        await store.close()


async def _fired(base_url: str) -> int:
    """The log head from /api/health: the probe must answer (200) under this load too."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        r = await client.get("/api/health")
        assert r.status_code == 200, f"health under load: {r.status_code} {r.text}"
        head: int = r.json()["head_position"]
        return head


async def sigterm_round(
    db_url: str, log_dir: Path, *, writers: int, load_seconds: float = LOAD_SECONDS
) -> Round:
    """Start the server, load it, SIGTERM it mid-load; how it went."""
    server = start_server(db_url, log_dir, timeout=60)
    stop = asyncio.Event()
    load = asyncio.create_task(_write(server.base_url, writers, stop)) if writers else None
    try:
        head_before = await _fired(server.base_url)
        await asyncio.sleep(load_seconds)
        fired = await _fired(server.base_url) - head_before
        started = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        exit_code: int | None = None
        for _ in range(600):  # 30 s: a hang detector; the figure is `seconds`
            exit_code = server.process.poll()
            if exit_code is not None:
                break
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - started
    finally:  # whatever failed above, no server and no writer outlives the round
        stop.set()
        if server.process.poll() is None:
            server.kill()
        acknowledged = await load if load is not None else []
    missing = await _missing(db_url, acknowledged)
    return Round(exit_code, seconds, len(acknowledged), missing, fired)


async def _main(folder: Path, rounds: int, backend: str) -> None:
    """Baseline (empty log, no load) then the load, `rounds` SIGTERMs each."""
    for label, timers, writers in (("baseline", 0, 0), ("loaded", 2000, 32)):
        db_url = backend or f"sqlite:///{folder / label}.db"
        if timers:
            await seed_timers(db_url, timers, 1.0)
        for _ in range(rounds):
            r = await sigterm_round(db_url, folder, writers=writers)
            print(label, r, flush=True)


if __name__ == "__main__":
    backend = sys.argv[3] if len(sys.argv) > 3 else ""
    asyncio.run(_main(Path(sys.argv[1]), int(sys.argv[2]), backend))
