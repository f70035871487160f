"""Archiving (truncate-before) on PostgreSQL: what only that backend has to get right.

The store-level behaviour is in the contract (tests/support/store_contract.py, both
backends). Here: a log written before migration 7 migrates in place and can then be
archived, and a cut racing appends to the same stream (the append lock) leaves the
stream gapless above its cut and the chain verifying.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from eventstore import NewEvent, open_store, pg_schema
from eventstore.postgres import PostgresStore, parse_postgres_url
from projections.envelope import new_event
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tools.audit import audit
from tools.audit_source import open_source

pytestmark = pytest.mark.postgres


def ev(i: int) -> NewEvent:
    return new_event("client_input_received", {"content": str(i)}, timestamp=1_790_000_000.0)


async def audit_ok(url: str) -> dict[str, object]:
    source = await open_source(url)
    try:
        report = await audit(source)
    finally:
        await source.close()
    assert report.ok, report.to_dict()
    return dict(report.stats)


async def test_a_log_from_before_archiving_migrates_in_place(
    pg_dsn: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = fresh_url(pg_dsn)
    before = pg_schema.MIGRATIONS[:6]
    assert pg_schema.MIGRATIONS[6][1] == pg_schema.ARCHIVE_MIGRATION
    with monkeypatch.context() as patch:
        patch.setattr(pg_schema, "MIGRATIONS", before)
        old = await open_store(url)
        await old.append("s", [ev(i) for i in range(4)])
        await old.append("t", [ev(9)])
        await old.close()
    dsn, schema, _ = parse_postgres_url(url)
    conn = await asyncpg.connect(dsn)
    try:
        assert await pg_schema.current_version(conn, pg_schema.SchemaNames.for_schema(schema)) == 6
    finally:
        await conn.close()

    store = await open_store(url)  # migration 7 runs here, on the log as it is
    try:
        assert isinstance(store, PostgresStore)
        info = await store.stream_info("s")
        assert info is not None and (info.head_version, info.truncated_before) == (4, 0)
        assert await store.archive_before("s", 5, 4) == 4  # archived whole
        r = await store.append("s", [ev(5)], expected=4)
        assert (r.first_version, r.last_position) == (5, 6)
    finally:
        await store.close()
    stats = await audit_ok(url)
    assert stats["archived_events"] == 4


async def test_a_cut_racing_appends_to_its_stream(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    store = await open_store(url)
    try:
        await store.append("s", [ev(i) for i in range(20)])

        async def appends() -> None:
            for i in range(20, 60):
                await store.append("s", [ev(i)])

        removed, _ = await asyncio.gather(store.archive_before("s", 15, 14), appends())
        assert removed == 14
        versions = [e.version for e in await store.read("s")]
        assert versions == list(range(15, 61))
        info = await store.stream_info("s")
        assert info is not None and (info.head_version, info.truncated_before) == (60, 15)
    finally:
        await store.close()
    await audit_ok(url)
