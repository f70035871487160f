"""`hivelog replay SESSION_ID` on real SQLite files, run as the real command."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

from eventstore import open_store
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.tools_support import ROOT, hive_event, hivelog, jsonl


@pytest.fixture
async def log(db_url: str) -> str:
    store = await open_store(db_url)
    await store.append(
        "session_a",
        [
            hive_event("queen_phase_changed", {"phase": "working"}),
            hive_event("client_input_received", {"content": "hello  there\nfriend"}),
        ],
    )
    await store.append("session_b", [hive_event("client_input_received", {"content": "b"})])
    await store.append(
        "session_a",
        [hive_event("trigger_fired", {"trigger_id": "t1", "fire_count": 2, "task": "x" * 200})],
    )
    await store.close()
    return db_url


def test_human_lines(log: str) -> None:
    r = hivelog("replay", "session_a", "--db", log)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 3
    assert lines[0] == "2026-11-24T15:00:00+00:00  #1 v1  queen_phase_changed  phase=working"
    assert "client_input_received  content='hello there friend'" in lines[1]
    assert "#4 v3  trigger_fired  trigger_id=t1 task=xxx" in lines[2]
    assert "x… fire_count=2" in lines[2]  # long values are shortened
    assert r.stderr == b""


def test_json_lines_carry_the_full_envelope(log: str) -> None:
    r = hivelog("replay", "session_a", "--db", log, "--json")
    assert r.returncode == 0
    events = jsonl(r.stdout)
    assert [(e["position"], e["version"], e["type"]) for e in events] == [
        (1, 1, "queen_phase_changed"),
        (2, 2, "client_input_received"),
        (4, 3, "trigger_fired"),
    ]
    assert events[0]["stream_id"] == "session_a"
    assert events[0]["data"]["data"] == {"phase": "working"}
    assert events[0]["recorded_at"].endswith("Z") and events[0]["metadata"] is None


def test_from_and_types(log: str) -> None:
    r = hivelog("replay", "session_a", "--db", log, "--json", "--from", "2")
    assert [e["position"] for e in jsonl(r.stdout)] == [2, 4]
    r = hivelog("replay", "session_a", "--db", log, "--json", "--types", "trigger_fired,nope")
    assert [e["type"] for e in jsonl(r.stdout)] == ["trigger_fired"]


async def test_missing_and_deleted_sessions(log: str) -> None:
    r = hivelog("replay", "nope", "--db", log)
    assert r.returncode == 1 and b"no session 'nope'" in r.stderr
    store = await open_store(log)
    await store.delete_stream("session_b")
    await store.close()
    r = hivelog("replay", "session_b", "--db", log)
    assert r.returncode == 1 and b"deleted" in r.stderr


def test_usage_errors(log: str, tmp_path: object) -> None:
    assert hivelog("replay", "--db", log).returncode == 2
    assert hivelog("replay", "session_a", "--db", log, "--from", "-1").returncode == 2
    assert hivelog("replay", "session_a", "--db", log, "--save").returncode == 2
    assert hivelog("replay", "session_a", "--rebuild", "--db", log).returncode == 2
    r = hivelog("replay", "x", "--db", "sqlite:////nonexistent/dir/x.db")
    assert r.returncode == 2 and b"no database" in r.stderr


def _read_lines(proc: subprocess.Popen[bytes], count: int, seconds: float) -> list[bytes]:
    """Up to `count` stdout lines, waiting at most `seconds` in all."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    lines: list[bytes] = []
    buffer = b""
    deadline = time.monotonic() + seconds
    while len(lines) < count and time.monotonic() < deadline:
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *done, buffer = buffer.split(b"\n")
        lines.extend(done)
    selector.close()
    return lines


async def test_follow_streams_new_events_from_another_process(log: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools", "replay", "session_a", "--db", log, "--json", "--follow"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        caught_up = await asyncio.to_thread(_read_lines, proc, 3, 30)
        assert len(caught_up) == 3
        store = await open_store(log)
        await store.append("session_b", [hive_event("client_input_received", {"content": "b"})])
        await store.append(
            "session_a",
            [hive_event("client_input_received", {"content": f"live {i}"}) for i in range(2)],
        )
        await store.close()
        live = await asyncio.to_thread(_read_lines, proc, 2, 30)
        events = jsonl(b"\n".join(live))
        assert [e["data"]["data"]["content"] for e in events] == ["live 0", "live 1"]
        assert [e["version"] for e in events] == [4, 5]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.postgres
async def test_replay_export_and_rebuild_on_postgres(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    store = await open_store(url)
    await store.append("session_a", [hive_event("queen_phase_changed", {"phase": "working"})])
    await store.append("session_b", [hive_event("client_input_received", {"content": "b"})])
    await store.close()
    r = hivelog("replay", "session_a", "--db", url, "--json")
    assert r.returncode == 0, r.stderr
    assert [e["type"] for e in jsonl(r.stdout)] == ["queen_phase_changed"]
    r = hivelog("export", "--db", url)
    assert [e["stream_id"] for e in jsonl(r.stdout)] == ["session_a", "session_b"]
    r = hivelog("replay", "--rebuild", "--save", "--db", url)
    assert r.returncode == 0, r.stderr
    assert hivelog("audit", "--db", url).returncode == 0
