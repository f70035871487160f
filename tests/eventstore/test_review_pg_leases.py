"""Lease claims on PostgreSQL never wait on a row another node holds locked.

A node paused (SIGSTOP) or cut off between its claim and its COMMIT keeps the rows it
claimed locked. Claims of other nodes must skip those rows, not wait: the claim's
seed statement used to meet them (INSERT ... ON CONFLICT DO NOTHING waits for the
row's locker), and since single-name acquires are coalesced into one claim, one such
row stalled every claim of the node, so none of its sessions' timers fired."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from eventstore import InvalidEvent, open_store
from eventstore.pg_leases import PostgresLeases
from eventstore.postgres import PostgresStore
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres


async def test_a_claim_skips_rows_a_paused_claimer_holds(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    paused, other = await open_store(url), await open_store(url)
    side = await asyncpg.connect(pg_dsn)
    try:
        assert await paused.leases.acquire("fire:s1", "node-a", 0.001) is not None
        await asyncio.sleep(0.01)  # expired: free for anyone
        assert isinstance(paused, PostgresStore) and isinstance(paused.leases, PostgresLeases)
        # node-a's claim of fire:s1, taken and not committed (the process stopped there)
        tx = side.transaction()
        await tx.start()
        await side.execute(
            f"UPDATE {paused.names.q}.leases SET owner = 'node-a', fence = fence + 1, "
            "expires_at = clock_timestamp() + interval '30 seconds' WHERE name = 'fire:s1'"
        )
        # bounded only so that the bug fails the test instead of hanging it
        granted = await asyncio.wait_for(
            other.leases.claim(["fire:s1", "fire:s2"], "node-b", 30), timeout=60
        )
        assert [lease.name for lease in granted] == ["fire:s2"]
        alone = await asyncio.wait_for(other.leases.acquire("fire:s3", "node-b", 30), 60)
        assert alone is not None and alone.owner == "node-b"
        assert await asyncio.wait_for(other.leases.acquire("fire:s1", "node-b", 30), 60) is None
        await tx.rollback()
        taken = await other.leases.acquire("fire:s1", "node-b", 30)
        assert taken is not None and taken.owner == "node-b" and taken.fence == 2
    finally:
        await side.close()
        await paused.close()
        await other.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_lease_names_and_owners_with_nul_are_refused(
    backend: str,
    pg_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """PostgreSQL text cannot hold NUL: both backends refuse it (SQLite stored it)."""
    url = fresh_url(pg_dsn) if backend == "postgresql" else f"sqlite:///{tmp_path}/l.db"
    store = await open_store(url)
    try:
        with pytest.raises(InvalidEvent, match="NUL"):
            await store.leases.acquire("fire:\x00", "node-a", 30)
        with pytest.raises(InvalidEvent, match="NUL"):
            await store.leases.claim(["a"], "node\x00a", 30)
        assert await store.leases.holders("fire:\x00") == []
    finally:
        await store.close()
