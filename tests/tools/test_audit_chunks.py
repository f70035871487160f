"""The audit's chunked pass (each check takes a chunk of rows in one tight loop) and its
catalogue fold in a second process give exactly the report of a row-by-row pass: the
same faults, worded the same, in the same order, with the same stats."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstore import NewEvent, open_store
from projections import catalogue as cat
from tests.support.tools_support import hive_event, sqlite_path
from tools import audit_fold, audit_source
from tools.audit import audit
from tools.audit_chain import ChainCheck
from tools.audit_checks import EventRow, LogChecker, as_row
from tools.audit_projections import CatalogueCheck, TriggerFireCheck
from tools.audit_source import open_source


def _row_by_row(self: Any, rows: list[EventRow], order: int = 0) -> None:
    for index, row in enumerate(rows):
        self.report.at(index, order)
        self.event(as_row(row))


async def seed(db_url: str, sessions: int = 12, per: int = 40) -> None:
    store = await open_store(db_url)
    rng = random.Random(5)
    for n in range(sessions):
        await store.append(f"session_{n}", [hive_event("session_created", {"n": n})])
    for i in range(sessions * per):
        sid = f"session_{rng.randrange(sessions)}"
        kind = rng.choice(["client_input_received", "llm_turn_complete", "trigger_fired"])
        data: dict[str, Any] = {"content": f"m{i}"}
        if kind == "trigger_fired":  # some slots fired twice
            data = {"trigger_id": "daily", "scheduled_at": 1_000 * (i % 7)}
        await store.append(sid, [hive_event(kind, data)])
        if i % 97 == 0:
            await store.append("$system", [NewEvent("tick", {"i": i})])
    events = await store.read_all(0, 100_000)
    state = cat.fold_all(events)
    await store.save_checkpoint(cat.CHECKPOINT_NAME, state.position, cat.encode(state))
    await store.close()


FAULTS = (
    "DELETE FROM events WHERE position = 40",
    'UPDATE events SET data = CAST(\'{"type": "x"\' AS BLOB) WHERE position = 55',
    "UPDATE events SET metadata = CAST('nope' AS BLOB) WHERE position = 56",
    "UPDATE events SET version = version + 1000 WHERE position = 70",
    "UPDATE events SET chain = zeroblob(32) WHERE position = 90",
    "UPDATE events SET recorded_at = recorded_at + 1 WHERE position = 91",
    "UPDATE events SET data = CAST(REPLACE(CAST(data AS TEXT), '+00:00', '') AS BLOB) "
    "WHERE position IN (120, 121)",
    # another offset is not UTC (a payload fault); "Z" is UTC (only the chain sees it)
    "UPDATE events SET data = CAST(REPLACE(CAST(data AS TEXT), '+00:00', '+02:00') AS BLOB) "
    "WHERE position = 130",
    "UPDATE events SET data = CAST(REPLACE(CAST(data AS TEXT), '+00:00', 'Z') AS BLOB) "
    "WHERE position = 131",
    "UPDATE events SET type = 'other' WHERE position = 150",
    "UPDATE streams SET head_version = 99 WHERE stream_id = 'session_3'",
    "DROP INDEX events_event_id",
    "UPDATE events SET event_id = (SELECT event_id FROM events WHERE position = 1) "
    "WHERE position = 200",
    "UPDATE events SET position = 100000 WHERE position = 300",
)


def corrupted(db_url: str, tmp_path: Path) -> str:
    copy = tmp_path / "corrupted.db"
    shutil.copy(sqlite_path(db_url), copy)
    conn = sqlite3.connect(copy)
    for statement in FAULTS:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return f"sqlite:///{copy}"


async def report_of(url: str, *, fork_fold: bool = False) -> dict[str, Any]:
    source = await open_source(url)
    try:
        return (await audit(source, fork_fold=fork_fold)).to_dict()
    finally:
        await source.close()


@pytest.mark.parametrize("broken", [False, True])
async def test_chunks_and_forked_fold_report_as_row_by_row(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    await seed(db_url)
    monkeypatch.setattr(audit_source, "FETCH", 37)  # many chunks, faults in several
    url = corrupted(db_url, tmp_path) if broken else db_url
    chunked = await report_of(url)
    monkeypatch.setattr(audit_fold, "FORK_MIN_EVENTS", 0)
    spawned: list[int] = []
    spawn = audit_fold.ForkedCatalogueCheck._spawn

    def counted(self: audit_fold.ForkedCatalogueCheck, uri: str | None = None) -> Any:
        spawned.append(1)
        return spawn(self, uri)

    monkeypatch.setattr(audit_fold.ForkedCatalogueCheck, "_spawn", counted)
    forked = await report_of(url, fork_fold=True)
    assert spawned == [1]
    # the reference: one row at a time, every check on it, through `event` only
    monkeypatch.setattr(audit_source, "FETCH", 1)
    for check in (LogChecker, ChainCheck, CatalogueCheck, TriggerFireCheck):
        monkeypatch.setattr(check, "rows", _row_by_row)
    reference = await report_of(url)
    assert chunked == reference
    assert forked == reference
    failing = {check for check, n in reference["fault_counts"].items() if n}
    assert failing >= {"trigger_fires"}  # the seed fires some slots twice
    if not broken:
        assert failing == {"trigger_fires"}
    else:
        assert {"chain", "stream_versions", "payloads", "global_positions"} <= failing
        assert {"stream_heads", "event_ids", "projections", "trigger_fires"} <= failing
        payloads = {
            f["position"]: f["message"] for f in reference["faults"] if f["check"] == "payloads"
        }
        assert "is not UTC" in payloads[130] and 131 not in payloads
        # faults of different checks interleave by row, as a row-by-row pass adds them
        checks = [f["check"] for f in reference["faults"]]
        assert checks != sorted(checks, key=list(reference["fault_counts"]).index)
    assert orjson.dumps(chunked) == orjson.dumps(reference)


def test_quick_check_run_apart_is_reported_first() -> None:
    """quick_check runs beside the pass; the report reads as if it had run first, each
    check listing its first MAX_LISTED faults of the whole sequence and counting all."""
    from tools.audit import _storage_first
    from tools.audit_checks import MAX_LISTED, Fault, Report

    rest = Report()
    rest.add(Fault("chain", "c1"))
    for n in range(MAX_LISTED):
        rest.add(Fault("storage", f"read {n}"))
    rest.stats["events"] = 3
    merged = _storage_first(["page 7 broken", "page 9 broken"], rest)
    sequential = Report()
    for problem in ["page 7 broken", "page 9 broken"]:
        sequential.add(Fault("storage", f"PRAGMA quick_check: {problem}"))
    sequential.add(Fault("chain", "c1"))
    for n in range(MAX_LISTED):
        sequential.add(Fault("storage", f"read {n}"))
    sequential.stats["events"] = 3
    assert merged.to_dict() == sequential.to_dict()
    assert merged.counts["storage"] == MAX_LISTED + 2
