"""SIGKILL a process mid-append: everything acknowledged survives, exactly once, whole."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore import RecordedEvent, open_store

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(db_url: str, writers: int, min_acks: int, timeout: float = 30.0) -> list[str]:
    """Start the child, wait for `min_acks` acknowledgements, SIGKILL it, return ack lines."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_child", db_url, str(writers)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    acks: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        while len(acks) < min_acks and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acks.append(line.decode())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    # Lines already written to the pipe before the kill were acknowledged too.
    assert child.stdout is not None
    acks.extend(line.decode() for line in child.stdout.read().splitlines(keepends=True))
    child.stdout.close()
    assert child.stderr is not None
    child.stderr.close()
    return [a for a in acks if a.startswith("ack ") and a.endswith("\n")]


async def check_log(db_url: str, acks: list[str]) -> None:
    store = await open_store(db_url)
    try:
        log: list[RecordedEvent] = []
        while True:
            page = await store.read_all(after_position=log[-1].position if log else 0, limit=5000)
            if not page:
                break
            log.extend(page)
        # positions gapless, from 1
        assert [e.position for e in log] == list(range(1, len(log) + 1))
        by_id = {}
        for e in log:
            assert e.event_id not in by_id, "an event is stored twice"
            by_id[e.event_id] = e
        # every acknowledged event present, where the ack said
        for ack in acks:
            _, stream, first, last, last_position, ids = ack.split()
            stored = [by_id[i] for i in ids.split(",")]
            assert [e.version for e in stored] == list(range(int(first), int(last) + 1))
            assert all(e.stream_id == stream for e in stored)
            assert stored[-1].position == int(last_position)
        # nothing half-written: every batch has all 3 events, and versions are gapless
        batches: dict[tuple[str, int, int], int] = {}
        per_stream: dict[str, list[int]] = {}
        for e in log:
            key = (e.data["run"], e.data["w"], e.data["b"])
            batches[key] = batches.get(key, 0) + 1
            per_stream.setdefault(e.stream_id, []).append(e.version)
        assert set(batches.values()) == {3}
        for versions in per_stream.values():
            assert versions == list(range(1, len(versions) + 1))
        # the log head agrees, and the store takes new appends after the crash
        assert await store.head_position() == len(log)
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_append_loses_nothing_acknowledged(tmp_path: Path, round_: int) -> None:
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    acks = run_and_kill(db_url, writers=16, min_acks=200 + 150 * round_)
    assert len(acks) >= 200
    asyncio.run(check_log(db_url, acks))
    # crash again on the recovered file, then check everything once more
    more = run_and_kill(db_url, writers=8, min_acks=100)
    asyncio.run(check_log(db_url, acks + more))
