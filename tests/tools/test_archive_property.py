"""Property: any interleaving of session appends, archived in one or two rounds with any
`--keep-last`, audits clean (chain, positions, projections with the archives) and comes
back event for event after `restore-archive` (newest archive first); on SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import RecordedEvent, open_store
from projections import catalogue as cat
from projections.envelope import new_event
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tools.archive import archive
from tools.audit import audit
from tools.audit_source import open_source
from tools.restore_archive import restore_archive

T0 = 1_790_000_000.0


async def _all(url: str) -> list[RecordedEvent]:
    store = await open_store(url)
    try:
        return await store.read_all(0, limit=100_000)
    finally:
        await store.close()


async def _audit_ok(url: str, archives: list[Path]) -> None:
    source = await open_source(url)
    try:
        report = await audit(source, archives=archives)
    finally:
        await source.close()
    assert report.ok, report.to_dict()
    assert "projections" not in report.skipped, report.skipped


async def _scenario(folder: Path, url: str, streams: list[int], rounds: list[int]) -> None:
    store = await open_store(url)
    try:
        for n in sorted(set(streams)):
            sid = f"s{n}"
            await store.append(
                sid, [new_event("session_created", {"session_id": sid}, timestamp=T0)]
            )
        for i, n in enumerate(streams):
            body = {"content": f"m{i}"}
            await store.append(
                f"s{n}", [new_event("client_input_received", body, timestamp=T0 + i)]
            )
        events = await store.read_all(0, limit=100_000)
        state = cat.fold_all(events)
        await store.save_checkpoint(cat.CHECKPOINT_NAME, state.position, cat.encode(state))
    finally:
        await store.close()
    before = await _all(url)
    archives: list[Path] = []
    for r, keep in enumerate(rounds):
        out = folder / f"a{r}"
        await archive(url, out, older_than_s=None, keep_last=keep)
        archives.append(out)
        await _audit_ok(url, archives)
    live = await _all(url)
    keep = min(rounds)
    expected = sum(max(0, 1 + streams.count(n) - keep) for n in set(streams))
    assert len(before) - len(live) == expected
    assert [e for e in before if e in live] == live  # nothing changed, only removed
    for out in reversed(archives):
        await restore_archive(url, out)
    assert await _all(url) == before
    await _audit_ok(url, [])


STREAMS = st.lists(st.integers(0, 3), min_size=1, max_size=25)
ROUNDS = st.lists(st.integers(0, 6), min_size=1, max_size=2).map(
    lambda ks: sorted(ks, reverse=True)  # a later round keeps fewer: it cuts further
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams=STREAMS, rounds=ROUNDS)
def test_archive_audit_restore_roundtrip(streams: list[int], rounds: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp), f"sqlite:///{tmp}/log.db", streams, rounds))


@pytest.mark.postgres
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams=STREAMS, rounds=ROUNDS)
def test_archive_audit_restore_roundtrip_on_postgresql(
    pg_dsn: str,  # noqa: F811
    streams: list[int],
    rounds: list[int],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp), fresh_url(pg_dsn), streams, rounds))
