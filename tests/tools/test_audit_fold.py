"""The audit's catalogue fold in a second process: folded by runs it equals the service's
fold event by event; a child that read another snapshot is not trusted (the parent folds
its own); PostgreSQL feeds the child the rows; the child is stopped when the pass fails."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections import catalogue as cat
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.tools_support import sqlite_path
from tests.tools.test_audit_chunks import _row_by_row, report_of, seed
from tools import audit_fold, audit_source
from tools.audit import audit
from tools.audit_chain import ChainCheck
from tools.audit_checks import EventRow, LogChecker
from tools.audit_projections import CatalogueCheck, TriggerFireCheck, recorded
from tools.audit_source import open_source

SESSIONS = ("session_a", "session_b", "session_c")
KINDS = (
    "session_created",
    "client_input_received",
    "llm_turn_complete",
    "trigger_available",
    "trigger_fired",
    "session_stopped",
    "queen_identity_selected",
)

# one step of a log: (stream index, kind index, payload flavour); stream 3 is `$sessions`
# (a deletion or erase of a session), stream 4 another system stream
steps = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, len(KINDS) - 1), st.integers(0, 3)),
    max_size=60,
)


def _log(plan: list[tuple[int, int, int]]) -> list[EventRow]:
    versions: dict[str, int] = {}
    rows = []
    for position, (where, kind, flavour) in enumerate(plan, start=1):
        if where < len(SESSIONS):
            stream, event_type = SESSIONS[where], KINDS[kind]
            inner: dict[str, Any] = {"content": f"m{position}", "trigger_id": "t", "n": flavour}
            if event_type == "trigger_available":
                inner = {"trigger_id": "t", "trigger_type": "timer", "trigger_config": {}}
            body: Any = {
                "type": event_type,
                "stream_id": "queen",
                "data": inner,
                "timestamp": f"2026-11-24T15:{position % 60:02d}:00+00:00",
            }
            if flavour == 3:  # no envelope time, or not an object at all
                body = [1] if kind % 2 else {"type": event_type, "data": inner}
        elif where == 3:
            stream = cat.SESSIONS_STREAM
            event_type = "session_deleted" if flavour < 2 else "session_erased"
            body = {"data": {"session_id": SESSIONS[kind % len(SESSIONS)]}}
        else:
            stream, event_type, body = "$system", "tick", {"i": position}
        versions[stream] = versions.get(stream, 0) + 1
        rows.append(
            EventRow(
                position, stream, versions[stream], f"e{position}", event_type,
                orjson.dumps(body), None, 1_700_000_000_000_000 + position, None, None,
            )
        )  # fmt: skip
    return rows


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, run_max=st.integers(1, 4))
def test_folding_by_runs_equals_folding_event_by_event(
    plan: list[tuple[int, int, int]], run_max: int
) -> None:
    rows = _log(plan)
    reference = cat.fold_all(recorded(r) for r in rows)
    previous, audit_fold.RUN_MAX = audit_fold.RUN_MAX, run_max
    try:
        by_runs = audit_fold.fold_rows(rows)
        plain = audit_fold.fold_rows(tuple(r) for r in rows)
    finally:
        audit_fold.RUN_MAX = previous
    reference.position = by_runs.position = plain.position = len(rows)
    assert cat.to_dict(by_runs) == cat.to_dict(reference)
    assert cat.to_dict(plain) == cat.to_dict(reference)


def _spy_spawn(monkeypatch: pytest.MonkeyPatch, uri_for_child: str | None = None) -> list[Any]:
    """Count the children spawned (optionally pointing a reading child at another file)."""
    spawned: list[Any] = []
    spawn = audit_fold.ForkedCatalogueCheck._spawn

    def counted(self: audit_fold.ForkedCatalogueCheck, uri: str | None = None) -> Any:
        child = spawn(self, uri_for_child if uri and uri_for_child else uri)
        spawned.append(child)
        return child

    monkeypatch.setattr(audit_fold, "FORK_MIN_EVENTS", 0)
    monkeypatch.setattr(audit_fold.ForkedCatalogueCheck, "_spawn", counted)
    return spawned


def _reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_source, "FETCH", 1)
    for check in (LogChecker, ChainCheck, CatalogueCheck, TriggerFireCheck):
        monkeypatch.setattr(check, "rows", _row_by_row)


async def test_child_of_another_snapshot_is_not_trusted(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading child sees a log with one event fewer below the checkpoint (as if an
    erase had come between the two snapshots): the parent folds its own snapshot instead,
    and the report is the row-by-row one."""
    await seed(db_url)
    other = tmp_path / "other.db"
    shutil.copy(sqlite_path(db_url), other)
    conn = sqlite3.connect(other)
    conn.execute("DELETE FROM events WHERE position = 33")
    conn.commit()
    conn.close()
    spawned = _spy_spawn(monkeypatch, other.resolve().as_uri() + "?mode=ro")
    folded_here: list[int] = []
    fold_here = audit_fold.ForkedCatalogueCheck._fold_here

    async def spied(self: audit_fold.ForkedCatalogueCheck, source: Any) -> None:
        folded_here.append(1)
        await fold_here(self, source)

    monkeypatch.setattr(audit_fold.ForkedCatalogueCheck, "_fold_here", spied)
    forked = await report_of(db_url, fork_fold=True)
    assert len(spawned) == 1 and spawned[0].returncode == 0
    assert folded_here == [1]
    _reference(monkeypatch)
    reference = await report_of(db_url)
    assert forked == reference
    assert reference["stats"]["projection_sessions"] == 12


async def test_failed_child_is_replaced_by_a_fold_here(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(db_url)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    spawned = _spy_spawn(monkeypatch, garbage.resolve().as_uri() + "?mode=ro")
    forked = await report_of(db_url, fork_fold=True)
    assert len(spawned) == 1 and spawned[0].returncode != 0
    _reference(monkeypatch)
    assert forked == await report_of(db_url)


async def test_child_of_the_same_snapshot_is_trusted(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(db_url)
    spawned = _spy_spawn(monkeypatch)

    async def never(self: audit_fold.ForkedCatalogueCheck, source: Any) -> None:
        raise AssertionError("folded in the parent although the child read the same rows")

    monkeypatch.setattr(audit_fold.ForkedCatalogueCheck, "_fold_here", never)
    forked = await report_of(db_url, fork_fold=True)
    assert len(spawned) == 1 and spawned[0].returncode == 0
    assert forked["stats"]["projection_sessions"] == 12


@pytest.mark.postgres
async def test_postgres_child_is_fed_and_reports_as_row_by_row(
    pg_dsn: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = fresh_url(pg_dsn)
    await seed(url)
    monkeypatch.setattr(audit_source, "FETCH", 37)
    chunked = await report_of(url)
    spawned = _spy_spawn(monkeypatch)
    forked = await report_of(url, fork_fold=True)
    assert len(spawned) == 1 and spawned[0].returncode == 0
    assert spawned[0].args[-1] != url  # fed on stdin, not told where to read
    _reference(monkeypatch)
    reference = await report_of(url)
    assert chunked == reference
    assert forked == reference
    assert reference["stats"]["projection_sessions"] == 12


@pytest.mark.parametrize("reads_itself", [True, False])
async def test_child_is_stopped_when_the_pass_fails(
    db_url: str, monkeypatch: pytest.MonkeyPatch, reads_itself: bool
) -> None:
    await seed(db_url)
    spawned = _spy_spawn(monkeypatch)
    source = await open_source(db_url)
    if not reads_itself:  # as on PostgreSQL: the child is fed on stdin
        monkeypatch.delattr(type(source), "uri", raising=False)
        monkeypatch.setattr(source, "uri", None, raising=False)
    real = source.events

    async def failing(after: int = 0, *, plain: bool = False) -> AsyncIterator[list[EventRow]]:
        async for rows in real(after, plain=plain):
            yield rows
            raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(source, "events", failing)
    monkeypatch.setattr(audit_source, "FETCH", 50)
    try:
        report = await audit(source, fork_fold=True, storage=False)
    finally:
        await source.close()
    assert report.counts["storage"] == 1
    assert [f.message for f in report.faults if f.check == "storage"] == [
        "reading the log failed: database disk image is malformed"
    ]
    assert len(spawned) == 1
    child: subprocess.Popen[bytes] = spawned[0]
    assert child.returncode is not None  # killed and reaped, not left running
    assert child.poll() is not None
