"""A read or lease call whose PostgreSQL connection is killed under it (pg_terminate_backend,
a failover, a restart) raises `StoreUnavailable`, as a write does: HTTP answers 503 and
the supervisor counts an outage, instead of a 500 carrying asyncpg's own exception.

The call is held on a table lock taken by a side transaction, so its backend is known
and can be terminated while the query is in flight, every time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from eventstore import NewEvent, StoreUnavailable, open_store
from eventstore.leases import Lease
from eventstore.postgres import PostgresStore
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres

TABLES = ("events", "tombstones", "log_state", "checkpoints", "leases", "erased_links")


async def killed_mid_call(
    dsn: str, store: PostgresStore, call: Callable[[], Awaitable[Any]]
) -> Any:
    """Run `call` while its tables are locked, terminate the backend it waits on, and
    return what it raised (or returned)."""
    q = store.names.q
    side = await asyncpg.connect(dsn)
    watch = await asyncpg.connect(dsn)
    try:
        tx = side.transaction()
        await tx.start()
        locked = ", ".join(f"{q}.{t}" for t in TABLES)
        await side.execute(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")
        task = asyncio.ensure_future(call())
        pid = None
        for _ in range(800):  # until the call is seen waiting on the lock (bounded)
            pid = await watch.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> $1 AND query LIKE $2",
                side.get_server_pid(),
                f"%{q}%",
            )
            if pid is not None:
                break
            await asyncio.sleep(0.0125)
        assert pid is not None, "the call never waited on the lock"
        await watch.execute("SELECT pg_terminate_backend($1)", pid)
        await tx.rollback()
        try:
            return await task
        except Exception as exc:
            return exc
    finally:
        await side.close()
        await watch.close()


CALLS: dict[str, Callable[[PostgresStore, Lease], Awaitable[Any]]] = {
    "read_all": lambda s, _held: s.read_all(0, 10),
    "read": lambda s, _held: s.read("s"),
    "read_positions": lambda s, _held: s.read_positions("s", limit=10),
    "tail": lambda s, _held: s.tail("s", 10),
    "tail_json": lambda s, _held: s.tail_json("s", 10),
    "tail_array": lambda s, _held: s.tail_array("s", 10),
    "stream_info": lambda s, _held: s.stream_info("s"),
    "head_position": lambda s, _held: s.head_position(),
    "chain_head": lambda s, _held: s.chain_head(),
    "load_checkpoint": lambda s, _held: s.load_checkpoint("c"),
    "lease holders": lambda s, _held: s.leases.holders(""),
    "lease acquire": lambda s, _held: s.leases.acquire("job", "node-a", 30),
    "lease renew": lambda s, held: s.leases.renew(held, 30),
    "lease is_current": lambda s, held: s.leases.is_current(held),
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_call_whose_connection_is_killed_raises_store_unavailable(
    pg_dsn: str,  # noqa: F811
    name: str,
) -> None:
    store = await open_store(fresh_url(pg_dsn))
    assert isinstance(store, PostgresStore)
    try:
        await store.append("s", [NewEvent("a", {"i": 1})])
        held = await store.leases.acquire("held", "node-a", 30)
        assert held is not None
        outcome = await killed_mid_call(pg_dsn, store, lambda: CALLS[name](store, held))
        assert isinstance(outcome, StoreUnavailable), repr(outcome)
        # the pool replaces the killed connection: the next call is answered
        assert [e.position for e in await store.read_all(0, 10)] == [1]
        assert await store.head_position() == 1
    finally:
        await store.close()
