"""Floors: the least any durable implementation could cost on this machine.

Issue 15's ratios set hivelog against baselines that keep none of its guarantees
(a bare endpoint that writes nothing; SQLite in process). A floor keeps only the
guarantee each target is about and nothing of hivelog (no hash chain, no version
checks, no idempotency, no projections, one table with one unique index), so it
answers: how far could ANY implementation that acknowledges only what is durable get
here? Each floor is measured beside the figure it bounds, in the same run.

  - `sqlite_floor_appends`: one writer thread, `executemany` of every queued row, one
    commit (WAL, synchronous=FULL) per batch, one hand-off back to the loop per batch.
  - `pg_floor_appends`: the same on PostgreSQL, gapless and in commit order as
    hivelog's log is: one function call per batch takes a transaction-scoped advisory
    lock and inserts the batch at the next positions (autocommit, so one round trip,
    one flush); `connections=2` is two nodes' worth of commit connections.
  - `FLOOR_APP`: the bench's bare endpoint plus the SQLite floor's durable group
    commit of a create's three events before it answers.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from eventstore.postgres import parse_postgres_url

FLOOR_SCHEMA = "hivelog_bench_floor"  # dropped again after each PostgreSQL floor run

_SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, stream_id TEXT, "
    "version INTEGER, type TEXT, data BLOB, UNIQUE (stream_id, version))"
)
_SQLITE_INSERT = "INSERT INTO events (stream_id, version, type, data) VALUES (?, ?, ?, ?)"

Rows = Sequence[tuple[str, int, str, bytes]]
_Job = tuple[Rows, "asyncio.Future[None]"]


class SqliteFloor:
    """A durable group commit with nothing else: the writer thread takes every queued
    job, writes all their rows in one transaction, commits (one fsync) and hands the
    whole batch back to the loop in one call."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._loop = loop
        self._thread = threading.Thread(target=self._write, args=(path,), daemon=True)
        self._thread.start()

    async def append(self, rows: Rows) -> None:
        done: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((rows, done))
        await done

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _write(self, path: Path) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SQLITE_TABLE)
            while (batch := self._take()) is not None:
                db.execute("BEGIN")
                db.executemany(_SQLITE_INSERT, [row for rows, _ in batch for row in rows])
                db.execute("COMMIT")
                self._loop.call_soon_threadsafe(_resolve, [done for _, done in batch])
        finally:
            db.close()

    def _take(self) -> list[_Job] | None:
        """Every job queued now (waiting for the first); None once closed."""
        first = self._jobs.get()
        if first is None:
            return None
        batch = [first]
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return batch
            if job is None:
                self._jobs.put(None)  # close after this batch
                return batch
            batch.append(job)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


Payload = Callable[[int], bytes]  # the i-th event's JSON (the bench's own envelope)


async def sqlite_floor_appends(
    path: Path, writers: int, per_writer: int, tag: str, payload: Payload
) -> float:
    """events/s for `writers` tasks each appending `per_writer` single events."""
    floor = SqliteFloor(path, asyncio.get_running_loop())

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await floor.append([(f"{tag}-w{w}", i + 1, "tick", payload(i))])

    try:
        started = time.perf_counter()
        await asyncio.gather(*[writer(w) for w in range(writers)])
        return writers * per_writer / (time.perf_counter() - started)
    finally:
        await asyncio.to_thread(floor.close)


_PG_SETUP = f"""
CREATE SCHEMA IF NOT EXISTS {FLOOR_SCHEMA};
CREATE TABLE IF NOT EXISTS {FLOOR_SCHEMA}.events (
    position bigint PRIMARY KEY, stream_id text NOT NULL, version int NOT NULL,
    type text NOT NULL, data jsonb NOT NULL, UNIQUE (stream_id, version));
CREATE OR REPLACE FUNCTION {FLOOR_SCHEMA}.append(s text[], v int[], t text[], d text[])
RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(7415298361);
    INSERT INTO {FLOOR_SCHEMA}.events
    SELECT coalesce((SELECT max(position) FROM {FLOOR_SCHEMA}.events), 0) + x.o,
           x.s, x.v, x.t, x.d::jsonb
    FROM unnest(s, v, t, d) WITH ORDINALITY AS x(s, v, t, d, o);
$$;
"""


class PgFloor:
    """The same floor on PostgreSQL over one connection: while one batch's call is in
    flight, new appends queue; the next call carries all of them."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._queue: list[tuple[tuple[str, int, str, str], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._commit())

    async def append(self, stream: str, version: int, data: bytes) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(((stream, version, "tick", data.decode()), done))
        self._wake.set()
        await done

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        await self._task

    async def _commit(self) -> None:
        while not self._closing or self._queue:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                rows = [row for row, _ in batch]
                try:
                    await self._connection.execute(
                        f"SELECT {FLOOR_SCHEMA}.append($1, $2, $3, $4)",
                        *(list(column) for column in zip(*rows, strict=True)),
                    )
                except Exception as exc:  # every waiter learns it; the bench then stops
                    for _, done in batch:
                        done.set_exception(exc)
                    continue
                _resolve([done for _, done in batch])


async def pg_floor_appends(
    url: str, writers: int, per_writer: int, tag: str, payload: Payload, connections: int = 1
) -> float:
    """events/s for `writers` single-event writers spread over `connections` floors
    (each its own commit connection, like one node each)."""
    dsn = parse_postgres_url(url)[0]  # without hivelog's own parameters (schema=, pool_size=)
    opened = [await asyncpg.connect(dsn) for _ in range(connections)]
    try:
        await opened[0].execute(_PG_SETUP)
        floors = [PgFloor(connection) for connection in opened]

        async def writer(w: int) -> None:
            floor = floors[w % connections]
            for i in range(per_writer):
                await floor.append(f"{tag}-w{w}", i + 1, payload(i))

        started = time.perf_counter()
        await asyncio.gather(*[writer(w) for w in range(writers)])
        elapsed = time.perf_counter() - started
        for floor in floors:
            await floor.close()
        return writers * per_writer / elapsed
    finally:
        for connection in opened:
            await connection.close()


async def drop_pg_floor(url: str) -> None:
    connection = await asyncpg.connect(parse_postgres_url(url)[0])
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {FLOOR_SCHEMA} CASCADE")
    finally:
        await connection.close()


# The bench's bare endpoint (tools.bench_sessions.BARE_APP) plus the SQLite floor's durable
# group commit of a create's three events (about their sizes) before it answers 201.
FLOOR_APP = """
import asyncio, contextlib, sys, time, uuid
from pathlib import Path
import orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from tools.bench_floors import SqliteFloor
from tools.serve import LOOP, protocol_with_head_timeout

floor = None

@contextlib.asynccontextmanager
async def lifespan(app):
    global floor
    floor = SqliteFloor(Path(sys.argv[2]), asyncio.get_running_loop())
    yield
    await asyncio.to_thread(floor.close)

def event(type, timestamp, data):
    return orjson.dumps({"type": type, "stream_id": "queen", "node_id": None,
                         "execution_id": None, "data": data, "timestamp": timestamp,
                         "correlation_id": None, "colony_id": None})

async def create(request):
    body = await request.body()
    value = orjson.loads(body) if body.strip() else {}
    sid = "session_" + uuid.uuid4().hex
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    await floor.append([
        (sid, 1, "session_created", event("session_created", now, {
            "session_id": sid, "queen_id": "queen_technology", "model": None,
            "initial_phase": None, "initial_prompt": value.get("initial_prompt"),
            "runner_node": "node-1"})),
        (sid, 2, "queen_identity_selected", event("queen_identity_selected", now, {
            "queen_id": "queen_technology", "name": "", "title": ""})),
        (sid, 3, "queen_phase_changed", event("queen_phase_changed", now, {
            "phase": "independent"})),
    ])
    return Response(orjson.dumps({"session_id": sid, **value}), 201,
                    media_type="application/json")

app = Starlette(routes=[Route("/api/sessions", create, methods=["POST"])], lifespan=lifespan)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            loop=LOOP, http=protocol_with_head_timeout(10.0))
"""
