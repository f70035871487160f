"""Nodes starting at once on a fresh PostgreSQL schema all open it.

`migrate` read the schema version (0: nothing there yet), then asked whether the
schema held any table; when another node's first migration committed between the two
reads, its tables looked like a foreign application's and the node refused to start
(StoreRefused "not a hivelog log"). The check now runs under the migration lock."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from eventstore import open_store, pg_schema
from eventstore.pg_schema import SchemaNames, migrate
from eventstore.postgres import parse_postgres_url
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres


async def test_a_version_read_just_before_another_nodes_commit_is_not_foreign(
    pg_dsn: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = fresh_url(pg_dsn)
    first = await open_store(url)  # node A: migrated and committed
    await first.close()
    dsn, schema, _ = parse_postgres_url(url)
    reads = 0
    real = pg_schema._current_version

    async def before_the_commit(conn: object, names: SchemaNames) -> int:
        """Node B's first read happened while A's migration was still in flight."""
        nonlocal reads
        reads += 1
        return 0 if reads == 1 else await real(conn, names)

    monkeypatch.setattr(pg_schema, "_current_version", before_the_commit)
    conn = await asyncpg.connect(dsn)
    try:
        assert await migrate(conn, SchemaNames.for_schema(schema)) == 0  # nothing left to do
    finally:
        await conn.close()


async def test_nodes_opening_a_fresh_schema_at_once_all_start(pg_dsn: str) -> None:  # noqa: F811
    """Real connections, no patching: staggered starts put some node's reads around
    another's commit (before the fix about one round in ten refused a node)."""

    async def opener(url: str, delay: float) -> None:
        await asyncio.sleep(delay)
        store = await open_store(url)
        await store.close()

    for i in range(30):
        url = fresh_url(pg_dsn) + "&pool_size=1"
        await asyncio.gather(
            opener(url, 0), *(opener(url, 0.003 * i + k * 0.001) for k in range(3))
        )
