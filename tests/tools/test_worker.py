"""`hivelog worker` against a real server: runs, retries, stops cleanly, survives SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import Server, start_server
from tests.support.sessions_support import client, make_colony, make_env

G = "/api/subscriptions"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = make_env(tmp_path)
    server = env.start()
    try:
        yield server
    finally:
        server.stop()


def start_worker(server: Server, group: str, command: str, *extra: str) -> subprocess.Popen[bytes]:
    """A worker process, returned once it has its signal handlers (it says "started")."""
    log = Path(tempfile.mkdtemp(prefix="hivelog-worker-")) / "worker.log"
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "tools", "worker", group, "--exec", command]
        process = subprocess.Popen(
            [*argv, "--url", server.base_url, *extra],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    wait_until(lambda: b"started" in log.read_bytes() or process.poll() is not None)
    return process


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    return process.wait(timeout=60)


def produce(c: httpx.Client, n: int, event_type: str = "job") -> list[int]:
    """`n` events, five per session."""
    positions: list[int] = []
    sid = ""
    for i in range(n):
        if i % 5 == 0:
            sid = c.post("/api/sessions").json()["session_id"]
        body = {"events": [{"type": event_type, "data": {"i": i}}]}
        r = c.post(f"/api/sessions/{sid}/events", json=body)
        assert r.status_code == 201, r.text
        positions.append(r.json()["last_position"])
    return positions


def wait_until(check: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def group_view(c: httpx.Client, name: str) -> dict[str, Any]:
    view: dict[str, Any] = c.get(f"{G}/{name}").json()
    return view


def test_runs_the_command_per_message_with_env_and_acks(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cmd = (
        f'cat > "{out}/$HIVELOG_POSITION.json"; '
        f'echo "$HIVELOG_SESSION_ID $HIVELOG_EVENT_TYPE $HIVELOG_ATTEMPT" > "{out}/$HIVELOG_POSITION.env"'
    )
    with client(server) as c:
        worker = start_worker(
            server, "runs", cmd, "--types", "job", "--create", "--concurrency", "2"
        )
        try:
            wait_until(lambda: c.get(f"{G}/runs").status_code == 200)
            positions = produce(c, 6)
            produce(c, 2, "not_a_job")
            wait_until(lambda: len(list(out.glob("*.env"))) == 6)
            wait_until(lambda: group_view(c, "runs")["in_flight"] == 0)
        finally:
            assert stop(worker) == 0
        assert sorted(int(p.stem) for p in out.glob("*.json")) == positions
        event = json.loads((out / f"{positions[0]}.json").read_text())
        assert event["type"] == "job" and event["position"] == positions[0]
        session, etype, attempt = (out / f"{positions[0]}.env").read_text().split()
        assert (session, etype, attempt) == (event["session_id"], "job", "1")
        assert group_view(c, "runs")["parked"] == 0


def test_failure_is_retried_with_backoff(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cmd = (
        f'[ "$HIVELOG_ATTEMPT" -ge 2 ] || exit 3; touch "{out}/$HIVELOG_POSITION.$HIVELOG_ATTEMPT"'
    )
    with client(server) as c:
        c.put(f"{G}/retries", json={"types": ["job"]})
        worker = start_worker(server, "retries", cmd)
        try:
            (position,) = produce(c, 1)
            wait_until(lambda: (out / f"{position}.2").exists())
            wait_until(lambda: group_view(c, "retries")["in_flight"] == 0)
        finally:
            assert stop(worker) == 0
        assert group_view(c, "retries")["ready"] == 0


def test_sigterm_finishes_the_running_command(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cmd = f'touch "{out}/started"; sleep 1; touch "{out}/$HIVELOG_POSITION"'
    with client(server) as c:
        c.put(f"{G}/term", json={"types": ["job"]})
        worker = start_worker(server, "term", cmd)
        (position,) = produce(c, 1)
        wait_until(lambda: (out / "started").exists())
        assert stop(worker) == 0
        assert (out / str(position)).exists()
        view = group_view(c, "term")
        assert (view["in_flight"], view["checkpoint"]) == (0, view["head"])


def test_sigkill_mid_batch_is_redelivered(server: Server, tmp_path: Path) -> None:
    started, done = tmp_path / "started", tmp_path / "done"
    started.mkdir()
    done.mkdir()
    slow = f'echo $$ > "{started}/$HIVELOG_POSITION"; sleep 60'
    fast = f'touch "{done}/$HIVELOG_POSITION.$HIVELOG_ATTEMPT"'
    with client(server) as c:
        c.put(f"{G}/killed", json={"types": ["job"], "ack_timeout_seconds": 1, "ordering": "none"})
        positions = produce(c, 5)
        first = start_worker(server, "killed", slow, "--concurrency", "3")
        try:
            wait_until(lambda: len(list(started.iterdir())) == 3)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            for f in started.iterdir():  # the orphaned commands, by their pids
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(f.read_text().strip()), signal.SIGKILL)
        second = start_worker(server, "killed", fast, "--concurrency", "2")
        try:
            wait_until(lambda: len(list(done.iterdir())) == 5)
            wait_until(lambda: group_view(c, "killed")["in_flight"] == 0)
        finally:
            assert stop(second) == 0
        finished = {int(p.name.split(".")[0]): int(p.name.split(".")[1]) for p in done.iterdir()}
        assert sorted(finished) == positions
        killed = {int(p.name) for p in started.iterdir()}
        assert all(finished[p] == 2 for p in killed)  # the three held by the killed worker
        view = group_view(c, "killed")
        assert (view["parked"], view["checkpoint"]) == (0, view["head"])


def test_two_workers_never_run_a_message_twice(server: Server, tmp_path: Path) -> None:
    done = tmp_path / "done"
    done.mkdir()
    # set -C: the redirection fails if the file exists, so a second run would exit non-zero
    cmd = f'set -C; echo "$HIVELOG_DELIVERY_ID" > "{done}/$HIVELOG_POSITION"'
    with client(server) as c:
        c.put(f"{G}/pair", json={"types": ["job"], "ordering": "none"})
        a = start_worker(server, "pair", cmd, "--concurrency", "3")
        b = start_worker(server, "pair", cmd, "--concurrency", "3")
        try:
            positions = produce(c, 40)
            wait_until(lambda: len(list(done.iterdir())) == 40)
            wait_until(lambda: group_view(c, "pair")["in_flight"] == 0)
        finally:
            codes = [stop(a), stop(b)]  # both, whatever the first says
            assert codes == [0, 0]
        assert sorted(int(p.name) for p in done.iterdir()) == positions
        view = group_view(c, "pair")
        assert (view["parked"], view["ready"], view["checkpoint"]) == (0, 0, view["head"])


def test_timer_trigger_plus_worker_is_a_durable_scheduler(tmp_path: Path) -> None:
    """The README's recipe: every fire of a timer runs the command once and is acked."""
    env = make_env(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    tick = {
        "id": "tick",
        "name": "Tick",
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": 0.005},
        "task": "tick",
    }
    folder = make_colony(env.root, "ops", triggers=[tick])
    server = env.start()
    cmd = f'cat > "{out}/$HIVELOG_POSITION.json"'
    worker = start_worker(server, "ticks", cmd, "--types", "trigger_fired", "--create")
    try:
        with client(server) as c:
            wait_until(lambda: c.get(f"{G}/ticks").status_code == 200)
            r = c.post("/api/sessions", json={"agent_path": str(folder)})
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]
            wait_until(lambda: len(list(out.glob("*.json"))) >= 3)
            c.delete(f"/api/sessions/{sid}")  # stop the timer
            fired = [
                e
                for e in c.get(f"/api/sessions/{sid}/events/history").json()["events"]
                if e["type"] == "trigger_fired"
            ]
            last = fired[-1]["position"]
            wait_until(lambda: group_view(c, "ticks")["checkpoint"] >= last)
            ran = {int(p.stem): json.loads(p.read_text()) for p in out.glob("*.json")}
            assert sorted(ran) == [e["position"] for e in fired]
            assert all(e["data"]["trigger_id"] == "tick" for e in ran.values())
            assert group_view(c, "ticks")["checkpoint"] >= max(ran)
    finally:
        code = stop(worker)
        server.stop()
    assert code == 0


def test_worker_sends_the_token(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    server = start_server(env.db_url, tmp_path, [*env.args(), "--token", "s3cret"], env.env())
    cmd = f'touch "{out}/$HIVELOG_POSITION"'
    worker = start_worker(server, "authed", cmd, "--types", "job", "--create", "--token", "s3cret")
    try:
        headers = {"X-Hive-Token": "s3cret"}
        with httpx.Client(base_url=server.base_url, timeout=30, headers=headers) as c:
            assert httpx.get(f"{server.base_url}{G}").status_code == 401
            positions = produce(c, 2)
            wait_until(lambda: sorted(int(p.name) for p in out.iterdir()) == positions)
    finally:
        code = stop(worker)
        server.stop()
    assert code == 0
