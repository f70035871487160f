"""Several `hivelog serve` processes on one PostgreSQL log: real processes, real SIGKILL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventstore import open_store
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import Server, start_server
from tests.support.sessions_support import Env, client, make_colony

pytestmark = pytest.mark.postgres


def eventually(check: Callable[[], Any], within: float = 15.0, every: float = 0.05) -> Any:
    """Poll `check` until it returns a truthy value (bounded in time)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {check}")
        time.sleep(every)


@pytest.fixture
def two_nodes(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[Env, Server, Server]]:  # noqa: F811
    root = (tmp_path / "colonies").resolve()
    root.mkdir()
    (tmp_path / "hive").mkdir()
    env = Env(tmp_path, fresh_url(pg_dsn), root, tmp_path / "hive")
    extra = {**env.env(), "HIVELOG_NODE_TTL": "1.5"}
    a = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-a"], extra)
    b = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-b"], extra)
    try:
        yield env, a, b
    finally:
        a.stop()
        b.stop()


def test_a_command_on_one_node_shows_on_the_other(two_nodes: tuple[Env, Server, Server]) -> None:
    env, a, b = two_nodes
    folder = make_colony(env.root, "ops")
    with client(a) as ca, client(b) as cb:
        created = ca.post("/api/sessions", json={"agent_path": str(folder)})
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        seen = eventually(lambda: cb.get(f"/api/sessions/{sid}").status_code == 200)
        assert seen
        on_b = cb.get(f"/api/sessions/{sid}").json()
        assert on_b["agent_path"] == str(folder) and on_b["session_id"] == sid
        history_a = ca.get(f"/api/sessions/{sid}/events/history").json()
        history_b = cb.get(f"/api/sessions/{sid}/events/history").json()
        assert history_b["events"] == history_a["events"] and history_b["total"] > 0
        # SSE on node B delivers what node A appends next (resuming from a known
        # position, so the event cannot slip past before the stream is registered).
        head = ca.get("/api/health").json()["head_position"]
        params = {"types": "colony_unloaded", "after": str(head)}
        with cb.stream("GET", f"/api/sessions/{sid}/events", params=params) as sse:
            assert ca.delete(f"/api/sessions/{sid}/colony").status_code == 200
            data_lines = []
            for line in sse.iter_lines():
                if line.startswith("data:"):
                    data_lines.append(line)
                    break
        assert "colony_unloaded" in data_lines[0]


def test_concurrent_commands_from_two_nodes_never_corrupt(
    two_nodes: tuple[Env, Server, Server],
) -> None:
    env, a, b = two_nodes
    folder = make_colony(env.root, "ops")
    with client(a) as ca:
        sid = ca.post("/api/sessions", json={}).json()["session_id"]

    def hammer(server: Server, rounds: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            for _ in range(rounds):
                codes.append(
                    c.post(
                        f"/api/sessions/{sid}/colony", json={"agent_path": str(folder)}
                    ).status_code
                )
                codes.append(c.delete(f"/api/sessions/{sid}/colony").status_code)
        return codes

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer, node, 10) for node in (a, b, a, b)]
        codes = [code for f in futures for code in f.result(timeout=120)]
    assert set(codes) <= {200, 409}, codes  # 409: colony already loaded / none loaded
    assert codes.count(200) >= 2

    async def check() -> None:
        store = await open_store(env.db_url)
        try:
            events = await store.read(sid)
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            loads = [
                e.type for e in events if e.type in ("worker_colony_loaded", "colony_unloaded")
            ]
            for first, second in itertools.pairwise(loads):  # strictly alternating
                assert first != second, loads
        finally:
            await store.close()

    asyncio.run(check())
    with client(a) as ca, client(b) as cb:
        final_head = ca.get("/api/health").json()["head_position"]
        eventually(lambda: cb.get("/api/health").json()["head_position"] >= final_head)
        view_a = ca.get(f"/api/sessions/{sid}").json()
        view_b = eventually(lambda: cb.get(f"/api/sessions/{sid}").json())
        assert view_a["has_worker"] == view_b["has_worker"]


def test_node_liveness_follows_the_process(two_nodes: tuple[Env, Server, Server]) -> None:
    env, a, _b = two_nodes

    async def alive() -> set[str]:
        store = await open_store(env.db_url)
        try:
            return {lease.owner for lease in await store.leases.holders("node:")}
        finally:
            await store.close()

    assert asyncio.run(alive()) == {"node-a", "node-b"}
    time.sleep(2.0)  # longer than the 1.5 s TTL: renewals keep both alive
    assert asyncio.run(alive()) == {"node-a", "node-b"}
    a.kill()
    eventually(lambda: asyncio.run(alive()) == {"node-b"}, within=10)


def test_a_dead_nodes_sessions_are_adopted_once(tmp_path: Path, pg_dsn: str) -> None:  # noqa: F811
    root = (tmp_path / "colonies").resolve()
    root.mkdir()
    (tmp_path / "hive").mkdir()
    env = Env(tmp_path, fresh_url(pg_dsn), root, tmp_path / "hive")
    extra = {**env.env(), "HIVELOG_NODE_TTL": "1"}
    a = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-a"], extra)
    b = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-b"], extra)
    c = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-c"], extra)
    try:
        with client(a) as ca:
            ids = [ca.post("/api/sessions", json={}).json()["session_id"] for _ in range(3)]
        a.kill()

        async def runners() -> dict[str, list[str | None]]:
            store = await open_store(env.db_url)
            try:
                seen: dict[str, list[str | None]] = {}
                for sid in ids:
                    for e in await store.read(sid):
                        if e.type in ("session_created", "session_adopted"):
                            seen.setdefault(sid, []).append(e.data["data"]["runner_node"])
                return seen
            finally:
                await store.close()

        final = eventually(
            lambda: (r := asyncio.run(runners())) and all(len(v) == 2 for v in r.values()) and r,
            within=20,
        )
        for sid in ids:  # created on a, adopted exactly once, by b or c
            assert final[sid][0] == "node-a" and final[sid][1] in ("node-b", "node-c")
        time.sleep(2.5)  # more adoption rounds pass: nothing is adopted twice
        assert asyncio.run(runners()) == final
    finally:
        for node in (a, b, c):
            node.stop()


def test_timers_move_to_the_adopting_node_without_doubles(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
) -> None:
    root = (tmp_path / "colonies").resolve()
    root.mkdir()
    (tmp_path / "hive").mkdir()
    env = Env(tmp_path, fresh_url(pg_dsn), root, tmp_path / "hive")
    tick = {
        "id": "tick",
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": 0.005},  # every 0.3 s
        "task": "tick",
    }
    folder = make_colony(env.root, "ops", triggers=[tick])
    extra = {**env.env(), "HIVELOG_NODE_TTL": "1"}
    a = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-a"], extra)
    b = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-b"], extra)

    async def fires(sid: str) -> list[tuple[int, str | None]]:
        store = await open_store(env.db_url)
        try:
            out = []
            runner: str | None = None
            for e in await store.read(sid):
                data = e.data["data"]
                if e.type in ("session_created", "session_adopted"):
                    runner = data["runner_node"]
                if e.type == "trigger_fired":
                    out.append((data["scheduled_at"], runner))
            return out
        finally:
            await store.close()

    try:
        with client(a) as ca:
            created = ca.post("/api/sessions", json={"agent_path": str(folder)})
            assert created.status_code == 201, created.text
            sid = created.json()["session_id"]
        eventually(lambda: len(asyncio.run(fires(sid))) >= 3, within=15)
        a.kill()
        eventually(
            lambda: sum(1 for _, r in asyncio.run(fires(sid)) if r == "node-b") >= 3, within=30
        )
        recorded = asyncio.run(fires(sid))
        slots = [slot for slot, _ in recorded]
        assert len(slots) == len(set(slots)), "a slot was fired twice"
        assert slots == sorted(slots)
        assert {r for _, r in recorded} == {"node-a", "node-b"}
    finally:
        a.stop()
        b.stop()
