"""Two `hivelog serve` processes with one --node-id: the second live one is refused.

Each process holds `node-instance:<id>` under its own token (host:pid:start:place).
Before, the same owner let a second live process take `node:<id>` silently: both ran
the node's timers, and stopping either released the other's lease. A restart after a
SIGKILL must still come up at once (its dead holder is released), and a holder on
another machine is waited for until its lease expires unrenewed. Real processes, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.core.nodes import Instance, claim_instance, instance_lease_name, node_lease_name
from api.core.service import SessionService
from api.core.settings import Settings
from eventstore import InvalidEvent, open_store
from eventstore.leases import Lease
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import Server, free_port, start_server
from tests.support.sessions_support import BACKENDS

pytestmark = pytest.mark.slow

TTL = 3.0  # long enough that a loaded machine never lets a live lease lapse
FOREIGN = "elsewhere:4242:1:feedfacefeedface"  # a process on another machine


@dataclass
class Log:
    url: str
    tmp: Path

    def args(self, node_id: str = "x") -> list[str]:
        return ["--agents-root", str(self.tmp), "--node-id", node_id]

    def env(self, ttl: float = TTL) -> dict[str, str]:
        return {
            "HIVE_HOME": str(self.tmp),
            "HIVELOG_AGENTS_ROOTS": "",
            "HIVELOG_NODE_TTL": str(ttl),
        }

    def start(self, ttl: float = TTL) -> Server:
        return start_server(self.url, self.tmp, self.args(), self.env(ttl))

    def leases(self) -> dict[str, Lease]:
        async def read() -> dict[str, Lease]:
            store = await open_store(self.url)
            try:
                return {lease.name: lease for lease in await store.leases.holders("node")}
            finally:
                await store.close()

        return asyncio.run(read())


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Log:
    if request.param == "postgres":
        return Log(fresh_url(request.getfixturevalue("pg_dsn")), tmp_path)
    return Log(f"sqlite:///{tmp_path / 'hivelog.db'}", tmp_path)


def eventually(check: Callable[[], Any], within: float = 20.0) -> Any:
    """Poll `check` until it returns a truthy value (bounded in time)."""
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {check}")
        time.sleep(0.05)
    return value


def serve_expecting_refusal(log: Log, ttl: float = TTL) -> tuple[int, str]:
    """Run `hivelog serve` with node id x; its exit code and output. Fails if it serves."""
    port = free_port()
    command = [sys.executable, "-m", "tools", "serve", "--db", log.url, "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "warning", *log.args()]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **log.env(ttl)},
    )
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            pytest.fail(f"a second process with the same node id serves ({health.status_code})")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=10)[0].decode(errors="replace")
    return process.returncode, output


def owner_pid(lease: Lease) -> int:
    instance = Instance.parse(lease.owner)
    assert instance is not None, lease.owner
    return instance.pid


def test_a_second_live_process_is_refused_and_the_first_keeps_its_lease(log: Log) -> None:
    first = log.start()
    try:
        code, output = serve_expecting_refusal(log)
        assert code == 2, output
        assert "node id 'x' is in use by another live process" in output
        held = log.leases()
        assert owner_pid(held[instance_lease_name("x")]) == first.process.pid
        assert held[node_lease_name("x")].owner == "x"
        health = httpx.get(f"{first.base_url}/api/health", timeout=5).json()
        assert health["components"]["node_lease"]["status"] == "ok"
    finally:
        first.stop()


def test_a_killed_process_is_taken_over_at_once(log: Log) -> None:
    """The ttl is long: a restart that waited for the dead lease would not come up."""
    first = log.start(ttl=60)
    first.kill()
    assert owner_pid(log.leases()[instance_lease_name("x")]) == first.process.pid
    again = log.start(ttl=60)
    try:
        assert "is gone; taking over" in again.log()
        held = log.leases()
        assert owner_pid(held[instance_lease_name("x")]) == again.process.pid
        assert node_lease_name("x") in held
    finally:
        again.stop()


def test_a_stopped_process_frees_the_node_id(log: Log) -> None:
    first = log.start(ttl=60)
    first.stop()
    assert instance_lease_name("x") not in log.leases()
    again = log.start(ttl=60)
    again.stop()
    assert "taking over" not in again.log() and "waiting" not in again.log()


@contextlib.contextmanager
def foreign_holder(log: Log, *, renewing: bool, ttl: float = TTL) -> Iterator[None]:
    """`node-instance:x` held by a process of another machine: renewed every ttl/4 by a
    thread while the block runs (alive), or taken once and left to expire (dead)."""
    done = threading.Event()
    taken = threading.Event()

    async def hold() -> None:
        store = await open_store(log.url)
        try:
            lease = await store.leases.acquire(instance_lease_name("x"), FOREIGN, ttl)
            assert lease is not None
            taken.set()
            for _ in range(2000):  # bounded: 2000 x ttl/4
                if not renewing or done.is_set():
                    break
                await asyncio.sleep(ttl / 4)
                lease = await store.leases.renew(lease, ttl)
                assert lease is not None
        finally:
            await store.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    assert taken.wait(30)
    try:
        yield
    finally:
        done.set()
        thread.join(30)


def test_a_live_holder_on_another_machine_is_refused(log: Log) -> None:
    with foreign_holder(log, renewing=True):
        code, output = serve_expecting_refusal(log)
        assert code == 2, output
        assert FOREIGN in output
        assert log.leases()[instance_lease_name("x")].owner == FOREIGN


def test_a_dead_holder_on_another_machine_is_taken_once_expired(log: Log) -> None:
    """Its lease outlasts the start-up and is longer than this node's own ttl."""
    with foreign_holder(log, renewing=False, ttl=6):
        server = log.start()
        try:
            assert "waiting up to" in server.log()
            owner = log.leases()[instance_lease_name("x")].owner
            assert owner_pid(log.leases()[instance_lease_name("x")]) == server.process.pid, owner
        finally:
            server.stop()


def test_a_paused_process_whose_id_was_taken_stands_aside(log: Log) -> None:
    """SIGSTOP past the ttl: another process takes the id (the paused one's lease expired
    unrenewed). Resumed, the first reports that it stands aside and, stopped, leaves
    the new holder's node lease alone (same owner and fence: its release would end it)."""
    first = log.start()
    second: Server | None = None
    os.kill(first.process.pid, signal.SIGSTOP)
    try:
        second = log.start()
        os.kill(first.process.pid, signal.SIGCONT)

        def first_stands_aside() -> bool:
            health = httpx.get(f"{first.base_url}/api/health", timeout=5).json()
            reason = health["components"]["node_lease"]["reason"] or ""
            return "held by another process" in reason

        eventually(first_stands_aside)
        first.stop()
        held = log.leases()
        assert owner_pid(held[instance_lease_name("x")]) == second.process.pid
        assert node_lease_name("x") in held
    finally:
        if first.process.poll() is None:
            os.kill(first.process.pid, signal.SIGCONT)
        first.stop()
        if second is not None:
            second.stop()


def test_every_node_id_that_fits_a_node_lease_has_an_instance_lease(log: Log) -> None:
    """The instance name is longer than the node lease's: a long id's is hashed."""

    async def claim(node_id: str) -> Lease:
        store = await open_store(log.url)
        try:
            return await claim_instance(store.leases, node_id, TTL)
        finally:
            await store.close()

    longest = "n" * (256 - len(node_lease_name("")))
    lease = asyncio.run(claim(longest))
    assert lease.name == instance_lease_name(longest) and owner_pid(lease) == os.getpid()
    assert asyncio.run(claim(longest)).fence == lease.fence  # this process holds it still
    with pytest.raises(InvalidEvent, match="node id must be 1-251 characters"):
        asyncio.run(claim(longest + "n"))


@given(
    host=st.text(st.characters(blacklist_characters=":", blacklist_categories=["Cs"]), min_size=1),
    pid=st.integers(0, 2**22),
    started=st.text("t0123456789.", min_size=1),
    place=st.text("0123456789abcdef"),
)
def test_an_instance_token_reads_back(host: str, pid: int, started: str, place: str) -> None:
    instance = Instance(host, pid, started, place)
    assert Instance.parse(instance.token) == instance


async def test_the_node_id_is_held_before_the_log_is_folded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app takes (and from then on renews) its node id before folding the log: a fold
    longer than the ttl of the hold `hivelog serve` took first let a second process in."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    seen: list[set[str]] = []
    fold = SessionService.start

    async def watched(self: SessionService) -> None:
        seen.append({lease.name for lease in await self.store.leases.holders("node")})
        await fold(self)

    monkeypatch.setattr(SessionService, "start", watched)
    app = create_app(Settings(db_url=url, agents_roots=(tmp_path,), node_id="held"))
    async with app.router.lifespan_context(app):
        pass
    assert seen == [{instance_lease_name("held"), node_lease_name("held")}]
