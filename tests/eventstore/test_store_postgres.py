"""The store contract on the PostgreSQL backend, plus what only PostgreSQL has."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import orjson
import pytest

from eventstore import (
    EventStore,
    EventStoreError,
    InvalidEvent,
    RecordedEvent,
    WrongExpectedVersion,
    open_store,
)
from eventstore.pg_schema import MIGRATIONS
from eventstore.postgres import PostgresStore, parse_postgres_url
from tests.eventstore.test_crash import check_log, run_and_kill
from tests.support.pg import admin, fresh_url, pg_dsn, with_param  # noqa: F401
from tests.support.store_contract import StoreContract, ev

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, pg_dsn: str) -> None:  # noqa: F811
        self.dsn = pg_dsn

    async def open_fresh(self) -> EventStore:
        return await open_store(fresh_url(self.dsn))


# ---- what only PostgreSQL has ------------------------------------------------------


async def open_pg(url: str) -> PostgresStore:
    store = await PostgresStore.open(url)
    return store


@pytest.fixture
def url(pg_dsn: str) -> str:  # noqa: F811
    return fresh_url(pg_dsn)


async def read_log(store: EventStore) -> list[RecordedEvent]:
    log: list[RecordedEvent] = []
    while page := await store.read_all(after_position=log[-1].position if log else 0, limit=5000):
        log.extend(page)
    return log


async def test_every_connection_commits_synchronously(url: str) -> None:
    """Acknowledged = flushed, even on a server whose default is synchronous_commit=off."""
    store = await open_pg(url)
    try:
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert store.listener_pid is not None
    finally:
        await store.close()


async def test_append_function_forces_synchronous_commit(url: str) -> None:
    """Even a caller whose session says synchronous_commit=off gets a flushed append."""
    store = await open_pg(url)
    try:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.fetchrow(
                f"SELECT * FROM {store.names.q}.append_events('s', -1, $1, $2, $3, $4)",
                ["id-1"],
                ["t"],
                [b"{}"],
                [None],
            )
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        (e,) = await store.read("s")
        assert e.event_id == "id-1"
    finally:
        await store.close()


async def test_one_commit_time_per_append(url: str) -> None:
    store = await open_pg(url)
    try:
        await store.append("s", [ev(), ev(), ev()])
        assert len({e.recorded_at_us for e in await store.read("s")}) == 1
    finally:
        await store.close()


async def test_concurrent_openers_migrate_once(url: str) -> None:
    stores = await asyncio.gather(*[open_pg(url) for _ in range(4)])
    try:
        async with stores[0].pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT version FROM {stores[0].names.q}.schema_migrations ORDER BY version"
            )
        assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
        await stores[1].append("s", [ev()])
        assert [e.stream_id for e in await stores[2].read_all()] == ["s"]
    finally:
        for store in stores:
            await store.close()
    again = await open_pg(url)  # idempotent: nothing to apply, nothing lost
    assert await again.head_position() == 1
    await again.close()


OPEN_IN_CHILD = """
import asyncio, sys
from eventstore import open_store
async def main():
    print("ready", flush=True)
    sys.stdin.readline()  # released together with the other child
    store = await open_store(sys.argv[1])
    await store.close()
asyncio.run(main())
"""


async def test_two_processes_create_the_schema_at_once(url: str) -> None:
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPEN_IN_CHILD,
            url,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for c in children:
            assert c.stdout is not None
            assert await asyncio.wait_for(c.stdout.readline(), 60) == b"ready\n"
        for c in children:
            assert c.stdin is not None
            c.stdin.write(b"go\n")
            await c.stdin.drain()
        codes = [await asyncio.wait_for(c.wait(), 60) for c in children]
    finally:
        for c in children:
            if c.returncode is None:
                c.kill()
                await c.wait()
    assert codes == [0, 0]
    store = await open_pg(url)
    async with store.pool.acquire() as conn:
        versions = await conn.fetch(f"SELECT version FROM {store.names.q}.schema_migrations")
    await store.close()
    assert sorted(r[0] for r in versions) == list(range(1, len(MIGRATIONS) + 1))


async def test_schema_newer_than_code_is_refused(url: str) -> None:
    store = await open_pg(url)
    async with store.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {store.names.q}.schema_migrations (version, description) "
            "VALUES (999, 'from the future')"
        )
    await store.close()
    with pytest.raises(EventStoreError, match="999"):
        await open_pg(url)


@pytest.mark.parametrize(
    "query", ["schema=Bad-Name", "schema=", "schema=1x", "pool_size=0", "pool_size=x"]
)
async def test_bad_url_parameters(pg_dsn: str, query: str) -> None:  # noqa: F811
    key, _, value = query.partition("=")
    with pytest.raises(InvalidEvent):
        await open_store(with_param(pg_dsn, key, value))


def test_url_keeps_libpq_parameters() -> None:
    dsn, schema, pool = parse_postgres_url(
        "postgresql://u@/db?host=/tmp/x&port=5433&schema=app_1&pool_size=2"
    )
    assert (schema, pool) == ("app_1", 2)
    assert "schema" not in dsn and "pool_size" not in dsn
    assert "host=%2Ftmp%2Fx" in dsn and "port=5433" in dsn


async def test_positions_never_reused_after_erasing_the_newest(url: str) -> None:
    store = await open_pg(url)
    await store.append("keep", [ev()])
    await store.append("gone", [ev(), ev()])
    await store.delete_stream("gone")
    assert await store.head_position() == 3
    await store.close()
    store = await open_pg(url)
    assert (await store.append("keep", [ev()])).last_position == 4
    info = await store.stream_info("gone")
    assert info is not None and (info.deleted, info.head_version, info.erased_events) == (
        True,
        2,
        2,
    )
    await store.close()


async def test_two_nodes_race_on_one_stream(url: str) -> None:
    """Two stores (two pools, as two nodes would have) fight over expected versions."""
    a, b = await open_pg(url), await open_pg(url)
    try:
        for version in range(20):
            results = await asyncio.gather(
                a.append("hot", [ev(by="a")], expected=version),
                b.append("hot", [ev(by="b")], expected=version),
                return_exceptions=True,
            )
            assert sum(isinstance(r, WrongExpectedVersion) for r in results) == 1
        log = await read_log(a)
        assert [e.version for e in log] == list(range(1, 21))
        assert [e.position for e in log] == list(range(1, 21))
    finally:
        await a.close()
        await b.close()


# ---- live updates across processes ---------------------------------------------------

APPEND_IN_CHILD = """
import asyncio, sys
from eventstore import NewEvent, open_store
async def main():
    store = await open_store(sys.argv[1])
    await store.append("from-child", [NewEvent("t", {"pid": 1})])
    await store.close()
asyncio.run(main())
"""


async def collect(store: EventStore, after: int, count: int) -> list[RecordedEvent]:
    got: list[RecordedEvent] = []
    async for e in store.subscribe(after_position=after):
        got.append(e)
        if len(got) == count:
            break
    return got


async def test_notify_wakes_a_subscriber_in_another_process(url: str) -> None:
    store = await open_pg(url)
    store.poll_seconds = 3600  # only the LISTEN doorbell can wake it within the test
    try:
        task = asyncio.create_task(collect(store, 0, 1))
        await asyncio.sleep(0.2)  # parked on the doorbell
        assert not task.done()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPEND_IN_CHILD, url, cwd=ROOT
        )
        try:
            assert await asyncio.wait_for(child.wait(), 60) == 0
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        (event,) = await asyncio.wait_for(task, 30)
        assert event.stream_id == "from-child"
    finally:
        await store.close()


async def test_listener_reconnects_and_catches_up(url: str, pg_dsn: str) -> None:  # noqa: F811
    """Kill the LISTEN backend; append while it is down; the subscriber still gets it."""
    store = await open_pg(url)
    other = await open_pg(url)
    store.poll_seconds = 3600
    gate = asyncio.Event()
    start_listener = store._start_listener

    async def gated() -> None:
        await gate.wait()
        await start_listener()

    store._start_listener = gated  # type: ignore[method-assign]
    try:
        task = asyncio.create_task(collect(store, 0, 2))
        await asyncio.sleep(0.2)
        pid = store.listener_pid
        assert pid is not None
        await admin(pg_dsn, f"SELECT pg_terminate_backend({pid})")
        for _ in range(1000):  # the termination listener has fired
            if store.listener_pid is None:
                break
            await asyncio.sleep(0.01)
        assert store.listener_pid is None
        await other.append("while-down", [ev()])  # its NOTIFY reaches nobody
        await asyncio.sleep(0.2)
        assert not task.done()
        gate.set()
        for _ in range(1000):
            if store.reconnects == 1:
                break
            await asyncio.sleep(0.01)
        assert store.reconnects == 1 and store.listener_pid not in (None, pid)
        await other.append("after", [ev()])  # heard through the new LISTEN
        got = await asyncio.wait_for(task, 30)
        assert [e.stream_id for e in got] == ["while-down", "after"]
    finally:
        await store.close()
        await other.close()


# ---- ordering under stress (postgres.md §2) ---------------------------------------------


def test_many_writers_with_rollbacks_one_tailing_reader(pg_dsn: str) -> None:  # noqa: F811
    """6 processes x 4 tasks append, some holding the lock for ms and rolling back.

    One subscriber tails the log live. It must see every committed event exactly once,
    in position order, positions gapless, and nothing that was rolled back.
    """
    url = fresh_url(pg_dsn)
    asyncio.run(_stress(url, writers=6, rounds=60, tasks=4))


async def _stress(url: str, writers: int, rounds: int, tasks: int) -> None:
    reader = await open_pg(url)
    seen: list[RecordedEvent] = []

    async def tail() -> None:
        async for e in reader.subscribe():
            seen.append(e)

    tailing = asyncio.create_task(tail())
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.pg_stress_child",
            url,
            str(w),
            str(rounds),
            str(tasks),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for w in range(writers)
    ]
    try:
        outputs = [await asyncio.wait_for(c.communicate(), 120) for c in children]
        assert all(c.returncode == 0 for c in children)
        head = await reader.head_position()
        for _ in range(3000):
            if seen and seen[-1].position >= head:
                break
            await asyncio.sleep(0.01)
    finally:
        for c in children:
            if c.returncode is None:
                c.kill()
                await c.wait()
        tailing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tailing
    reports = [orjson.loads(out) for out, _ in outputs]
    acked = [i for r in reports for i in r["acked"]]
    rolled_back = {i for r in reports for i in r["rolled_back"]}
    assert rolled_back  # the run did roll some back
    log = await read_log(reader)
    await reader.close()
    assert [e.position for e in log] == list(range(1, len(log) + 1))
    assert [(e.position, e.event_id) for e in seen] == [(e.position, e.event_id) for e in log]
    ids = [e.event_id for e in log]
    assert len(set(ids)) == len(ids) == len(acked)
    assert set(ids) == set(acked)
    assert not rolled_back & set(ids)
    per_stream: dict[str, list[int]] = {}
    for e in log:
        per_stream.setdefault(e.stream_id, []).append(e.version)
    for versions in per_stream.values():
        assert versions == list(range(1, len(versions) + 1))


# ---- crash: SIGKILL a client mid-append -------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_append_loses_nothing_acknowledged(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    acks = run_and_kill(url, writers=16, min_acks=300)
    assert len(acks) >= 300
    asyncio.run(check_log(url, acks))
