"""`hivelog worker`'s limits against a real server: a command that outlives the group's
ack timeout is killed and nacked (it ran again next to its own redelivery), stderr costs
no memory however much a command writes, and a command that leaves a background child
holding stderr does not hold its slot."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server
from tests.support.sessions_support import client, make_env
from tests.tools.test_worker import G, group_view, produce, start_worker, stop, wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = make_env(tmp_path)
    server = env.start()
    try:
        yield server
    finally:
        server.stop()


def kill_listed(*files: Path) -> None:
    """SIGKILL the processes whose pids the test commands wrote (cleanup only)."""
    for file in files:
        if not file.exists():
            continue
        for line in file.read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line), signal.SIGKILL)


def parked(c: httpx.Client, group: str) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = c.get(f"{G}/{group}/parked").json()["messages"]
    return messages


def test_a_command_past_the_ack_timeout_is_killed_not_run_twice_at_once(
    server: Server, tmp_path: Path
) -> None:
    """Each run checks whether an earlier run of the message is still alive; before the
    fix the first run went on past its ack timeout while its redelivery started."""
    pids, kids, overlap = tmp_path / "pids", tmp_path / "kids", tmp_path / "overlap"
    cmd = (
        f'for p in $(cat "{pids}" 2>/dev/null); do '
        f'kill -0 "$p" 2>/dev/null && touch "{overlap}"; done; '
        f'echo $$ >> "{pids}"; sleep 300 & echo $! >> "{kids}"; wait'
    )
    with client(server) as c:
        c.put(
            f"{G}/slow",
            json={"types": ["job"], "ack_timeout_seconds": 2, "max_retries": 1, "ordering": "none"},
        )
        worker = start_worker(server, "slow", cmd, "--concurrency", "2")
        try:
            produce(c, 1)
            wait_until(lambda: overlap.exists() or len(parked(c, "slow")) == 1)
            assert not overlap.exists()
            (message,) = parked(c, "slow")
            assert "timed out" in str(message["reason"])
            assert message["attempts"] == 2
            # the command's whole process group went, its background sleep too
            for kid in kids.read_text().split():
                wait_until(lambda kid=kid: not Path(f"/proc/{kid}").exists())
        finally:
            kill_listed(pids, kids)
            assert stop(worker) == 0


def test_huge_stderr_keeps_only_its_tail(server: Server, tmp_path: Path) -> None:
    """200 MB on stderr: the park reason still ends with the last line, and the worker's
    peak memory stays far below what it read (it held all of it before the fix)."""
    cmd = "head -c 200000000 /dev/zero | tr '\\000' x >&2; echo LAST-LINE >&2; exit 3"
    with client(server) as c:
        c.put(f"{G}/loud", json={"types": ["job"], "max_retries": 0, "ack_timeout_seconds": 300})
        worker = start_worker(server, "loud", cmd)
        try:
            produce(c, 1)
            wait_until(lambda: len(parked(c, "loud")) == 1)
            status = Path(f"/proc/{worker.pid}/status").read_text().splitlines()
            peak_kib = int(next(x for x in status if x.startswith("VmHWM")).split()[1])
        finally:
            assert stop(worker) == 0
        (message,) = parked(c, "loud")
        assert str(message["reason"]).startswith("exit status 3")
        assert "xxLAST-LINE (after 1 attempts)" in str(message["reason"])
        assert peak_kib < 100 * 1024


def test_a_background_child_holding_stderr_does_not_hold_the_slot(
    server: Server, tmp_path: Path
) -> None:
    """`cmd &` keeps stderr open after the shell exits 0; before the fix the worker
    waited for that child (here 300 s) before acking or taking the next message."""
    kids, done = tmp_path / "kids", tmp_path / "done"
    done.mkdir()
    cmd = f'sleep 300 & echo $! >> "{kids}"; touch "{done}/$HIVELOG_POSITION"'
    with client(server) as c:
        c.put(f"{G}/bg", json={"types": ["job"], "ack_timeout_seconds": 300})
        worker = start_worker(server, "bg", cmd)
        try:
            positions = produce(c, 2)
            wait_until(lambda: len(list(done.iterdir())) == 2)
            wait_until(lambda: group_view(c, "bg")["checkpoint"] == positions[-1])
            assert group_view(c, "bg")["in_flight"] == 0
        finally:
            kill_listed(kids)
            assert stop(worker) == 0


def test_binary_stderr_still_parks_with_its_reason(server: Server) -> None:
    """NUL bytes in stderr made every nack a 400 ('reason' must not contain NUL), so
    a failing command's message was never retried or parked, only timed out."""
    cmd = "printf 'bin\\000ary\\377 end' >&2; exit 4"
    with client(server) as c:
        c.put(f"{G}/bin", json={"types": ["job"], "max_retries": 0, "ack_timeout_seconds": 300})
        worker = start_worker(server, "bin", cmd)
        try:
            produce(c, 1)
            wait_until(lambda: len(parked(c, "bin")) == 1)
        finally:
            assert stop(worker) == 0
        (message,) = parked(c, "bin")
        assert message["reason"] == "exit status 4: bin\ufffdary\ufffd end (after 1 attempts)"


def test_an_ack_after_the_timeout_says_the_message_may_run_twice(
    server: Server, tmp_path: Path
) -> None:
    """Worker A is paused (SIGSTOP, as a frozen host) past the ack timeout while its
    command runs; worker B gets attempt 2 and acks it; A's ack is then `unknown`,
    which A logged as plain 'done'."""
    started = tmp_path / "started"
    cmd = f'[ "$HIVELOG_ATTEMPT" = 1 ] || exit 0; touch "{started}"; sleep 1'
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with client(server) as c:
        c.put(f"{G}/late", json={"types": ["job"], "ack_timeout_seconds": 2})
        argv = [sys.executable, "-m", "tools", "worker", "late", "--exec", cmd]
        with logs[0].open("wb") as out:
            a = subprocess.Popen([*argv, "--url", server.base_url], stderr=out)
        b: subprocess.Popen[bytes] | None = None
        try:
            wait_until(lambda: b"started" in logs[0].read_bytes())
            produce(c, 1)
            wait_until(started.exists)
            os.kill(a.pid, signal.SIGSTOP)
            with logs[1].open("wb") as out:
                b = subprocess.Popen([*argv, "--url", server.base_url], stderr=out)
            wait_until(lambda: b"done" in logs[1].read_bytes())
            os.kill(a.pid, signal.SIGCONT)
            wait_until(lambda: b"ack of" in logs[0].read_bytes() or b"done" in logs[0].read_bytes())
        finally:
            os.kill(a.pid, signal.SIGCONT)
            codes = [stop(a), stop(b) if b is not None else 0]
        assert codes == [0, 0]
    text = logs[0].read_text()
    assert "came too late" in text and "may run twice" in text
