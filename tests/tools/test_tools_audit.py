"""`hivelog audit` on real SQLite files: a sound log passes, each seeded fault is named."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from eventstore import NewEvent, open_store
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.tools_support import hive_event, hivelog, sqlite_path


async def seed_sound_log(db_url: str) -> None:
    """Three sessions, a system stream, a deleted session and a checkpoint."""
    store = await open_store(db_url)
    for n in range(3):
        await store.append(f"session_{n}", [hive_event("session_created", {"n": n})])
    await store.append("gone", [hive_event("x", {}), hive_event("y", {})])
    await store.append("$sessions", [NewEvent("session_deleted", {"session_id": "gone"})])
    for i in range(5):
        await store.append("session_1", [hive_event("client_input_received", {"content": i})])
    await store.delete_stream("gone")
    await store.append("session_2", [hive_event("queen_phase_changed", {"phase": "working"})])
    await store.save_checkpoint("test-projection", await store.head_position(), b"{}")
    await store.close()


def audit_json(db_url: str) -> tuple[int, dict[str, Any]]:
    r = hivelog("audit", "--db", db_url, "--json")
    assert r.returncode in (0, 1), r.stderr.decode()
    return r.returncode, orjson.loads(r.stdout)


def corrupt(db_url: str, tmp_path: Path, name: str, *statements: str) -> str:
    """A copy of the sound log with raw SQL applied behind the store's back."""
    copy = tmp_path / f"{name}.db"
    shutil.copy(sqlite_path(db_url), copy)
    conn = sqlite3.connect(copy)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return f"sqlite:///{copy}"


@pytest.fixture
async def sound(db_url: str) -> str:
    await seed_sound_log(db_url)
    return db_url


def faults(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for f in report["faults"] if f["check"] == check]


def only_checks_failing(report: dict[str, Any]) -> set[str]:
    return {check for check, n in report["fault_counts"].items() if n}


async def test_sound_log_passes(sound: str) -> None:
    code, report = audit_json(sound)
    assert code == 0, report
    assert report["ok"] is True
    stats = report["stats"]
    assert stats["events"] == 10 and stats["erased_events"] == 2
    assert stats["deleted_streams"] == 1 and stats["head_position"] == 12
    human = hivelog("audit", "--db", sound)
    assert human.returncode == 0
    assert b"log is sound" in human.stdout
    assert human.stderr == b""  # no progress bar when stderr is not a terminal


async def test_deleted_row_is_named(sound: str, tmp_path: Path) -> None:
    # session_1 holds positions 7..11 as versions 2..6 (after its creation at 2).
    url = corrupt(sound, tmp_path, "deleted_row", "DELETE FROM events WHERE position = 7")
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {"stream_versions", "global_positions", "chain"}
    (link,) = faults(report, "chain")
    assert link["position"] == 8 and "position 6" in link["message"]
    (gap,) = faults(report, "stream_versions")
    assert gap["stream_id"] == "session_1" and gap["position"] == 8
    assert "missing" in gap["message"]
    (positions,) = faults(report, "global_positions")
    assert "7" in positions["message"]


async def test_deleted_newest_row_breaks_the_head(sound: str, tmp_path: Path) -> None:
    url = corrupt(sound, tmp_path, "deleted_tail", "DELETE FROM events WHERE position = 12")
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {"stream_heads", "global_positions", "chain"}
    assert faults(report, "stream_heads")[0]["stream_id"] == "session_2"
    (tail,) = faults(report, "chain")
    assert "chain head at position 12" in tail["message"]


async def test_duplicated_event_id_is_named(sound: str, tmp_path: Path) -> None:
    conn = sqlite3.connect(sqlite_path(sound))
    (first_id,) = conn.execute("SELECT event_id FROM events WHERE position = 1").fetchone()
    conn.close()
    url = corrupt(
        sound,
        tmp_path,
        "dup_id",
        "DROP INDEX events_event_id",  # as after a restore that lost its constraints
        f"UPDATE events SET event_id = '{first_id}' WHERE position = 6",
    )
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {"event_ids", "chain"}
    assert [f["position"] for f in faults(report, "chain")] == [6]  # the id is chained
    (dup,) = faults(report, "event_ids")
    assert first_id in dup["message"] and "2 times" in dup["message"]


async def test_broken_payload_is_named(sound: str, tmp_path: Path) -> None:
    url = corrupt(
        sound,
        tmp_path,
        "broken",
        'UPDATE events SET data = CAST(\'{"type": "session_\' AS BLOB) WHERE position = 2',
        "UPDATE events SET metadata = CAST('nope' AS BLOB) WHERE position = 3",
    )
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {"payloads", "chain"}
    assert [f["position"] for f in faults(report, "chain")] == [2, 3]
    assert "content changed" in faults(report, "chain")[0]["message"]
    broken = faults(report, "payloads")
    assert [(f["position"], f["stream_id"]) for f in broken] == [
        (2, "session_1"),
        (3, "session_2"),
    ]
    assert "not valid JSON" in broken[0]["message"]
    assert "metadata" in broken[1]["message"]


async def test_envelope_faults_are_named(sound: str, tmp_path: Path) -> None:
    bad_type = orjson.dumps(
        {
            "type": "other",
            "stream_id": "queen",
            "node_id": None,
            "execution_id": None,
            "data": {},
            "timestamp": "2026-11-24T15:00:00",
            "correlation_id": None,
            "colony_id": None,
        }
    ).decode()
    url = corrupt(
        sound,
        tmp_path,
        "envelope",
        'UPDATE events SET data = CAST(\'{"type": "session_created"}\' AS BLOB) WHERE position = 1',
        f"UPDATE events SET data = CAST('{bad_type}' AS BLOB) WHERE position = 2",
        "UPDATE events SET data = CAST('[1]' AS BLOB) WHERE position = 3",
    )
    code, report = audit_json(url)
    assert code == 1
    messages = [f["message"] for f in faults(report, "payloads")]
    assert "lacks stream_id" in messages[0]
    assert "differs from the event type" in messages[1]
    assert "not a JSON object" in messages[2]


async def test_disagreeing_head_is_named(sound: str, tmp_path: Path) -> None:
    url = corrupt(
        sound,
        tmp_path,
        "head",
        "UPDATE streams SET head_version = head_version + 1 WHERE stream_id = 'session_0'",
    )
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {"stream_heads"}
    (fault,) = faults(report, "stream_heads")
    assert fault["stream_id"] == "session_0"
    assert "head says version 2" in fault["message"]


async def test_events_in_a_tombstoned_stream_are_named(sound: str, tmp_path: Path) -> None:
    url = corrupt(
        sound,
        tmp_path,
        "tombstone",
        "UPDATE events SET stream_id = 'gone', version = 1 WHERE position = 12",
        "UPDATE streams SET head_version = 1, head_position = 3 WHERE stream_id = 'session_2'",
    )
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {"tombstones", "chain"}
    assert [f["position"] for f in faults(report, "chain")] == [12]
    assert faults(report, "tombstones")[0]["stream_id"] == "gone"


async def test_checkpoint_beyond_head_is_named(sound: str, tmp_path: Path) -> None:
    url = corrupt(
        sound,
        tmp_path,
        "ckpt",
        "UPDATE checkpoints SET position = 99 WHERE name = 'test-projection'",
    )
    code, report = audit_json(url)
    assert code == 1
    assert "test-projection" in faults(report, "checkpoints")[0]["message"]


async def test_every_fault_listed_in_human_output(sound: str, tmp_path: Path) -> None:
    url = corrupt(
        sound,
        tmp_path,
        "many",
        "DELETE FROM events WHERE position = 7",
        "UPDATE events SET data = CAST('oops' AS BLOB) WHERE position = 2",
        "UPDATE streams SET head_version = 9 WHERE stream_id = 'session_0'",
    )
    r = hivelog("audit", "--db", url)
    assert r.returncode == 1
    out = r.stdout.decode()
    assert "FAULTS FOUND" in out
    assert "[stream 'session_1', position 8] version 3 follows version 1" in out
    assert "[stream 'session_1', position 2] data is not valid JSON" in out
    assert "[stream 'session_0', position 1] head says version 9" in out


def test_usage_errors(tmp_path: Path) -> None:
    missing = hivelog("audit", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2 and b"no database" in missing.stderr
    assert not (tmp_path / "none.db").exists()  # the audit never creates a log
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    r = hivelog("audit", "--db", f"sqlite:///{other}")
    assert r.returncode == 2 and b"not a hivelog database" in r.stderr
    assert hivelog("audit", "--db", "mysql://x").returncode == 2


@pytest.mark.postgres
async def test_postgres_log_audited_through_sql(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    await seed_sound_log(url)
    code, report = audit_json(url)
    assert code == 0, report
    assert report["stats"]["events"] == 10 and report["stats"]["erased_events"] == 2
    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(pg_dsn)
    try:
        first_id = await conn.fetchval(f"SELECT event_id FROM {schema}.events WHERE position = 1")
        await conn.execute(f"DELETE FROM {schema}.events WHERE position = 7")
        await conn.execute(f"ALTER TABLE {schema}.events DROP CONSTRAINT events_event_id")
        await conn.execute(f"UPDATE {schema}.events SET event_id = $1 WHERE position = 6", first_id)
        await conn.execute(
            f'UPDATE {schema}.events SET data = \'{{"type": "x"}}\' WHERE position = 3'
        )
        await conn.execute(
            f"UPDATE {schema}.checkpoints SET position = 99 WHERE name = 'test-projection'"
        )
    finally:
        await conn.close()
    code, report = audit_json(url)
    assert code == 1
    assert only_checks_failing(report) == {
        "stream_versions",
        "global_positions",
        "event_ids",
        "payloads",
        "checkpoints",
        "chain",
    }
    chain = faults(report, "chain")
    assert [f["position"] for f in chain] == [3, 6, 8]
    assert faults(report, "stream_versions")[0]["position"] == 8
    assert first_id in faults(report, "event_ids")[0]["message"]
    assert faults(report, "payloads")[0]["position"] == 3
