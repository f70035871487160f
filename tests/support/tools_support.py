"""Helpers for the operator-tool tests: run the real `hivelog` command, seed real logs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from eventstore import NewEvent

ROOT = Path(__file__).resolve().parents[2]


def hivelog(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """`python -m tools ARGS` as a subprocess (stdin closed, stdout/stderr captured)."""
    return subprocess.run(
        [sys.executable, "-m", "tools", *args],
        cwd=ROOT,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def hive_event(
    type: str,
    data: dict[str, Any],
    *,
    timestamp: str = "2026-11-24T15:00:00+00:00",
    event_id: str | None = None,
) -> NewEvent:
    """A session event as the sessions engineer stores it: hive's full envelope."""
    body = {
        "type": type,
        "stream_id": "queen",
        "node_id": None,
        "execution_id": None,
        "data": data,
        "timestamp": timestamp,
        "correlation_id": None,
        "colony_id": None,
        "run_id": None,
    }
    return NewEvent(type=type, data=body, event_id=event_id)


def jsonl(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def sqlite_path(db_url: str) -> str:
    return db_url[len("sqlite:///") :]


def event_count(path: Path) -> int:
    """Rows in a SQLite log's events table, read on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        found: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return found
    finally:
        conn.close()
