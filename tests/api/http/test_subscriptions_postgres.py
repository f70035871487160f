"""Consumer groups served by two `hivelog serve` nodes on one PostgreSQL log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import Server, start_server
from tests.support.sessions_support import Env, client

pytestmark = pytest.mark.postgres
G = "/api/subscriptions"


@pytest.fixture
def two_nodes(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[Server, Server]]:  # noqa: F811
    root = (tmp_path / "colonies").resolve()
    root.mkdir()
    (tmp_path / "hive").mkdir()
    env = Env(tmp_path, fresh_url(pg_dsn), root, tmp_path / "hive")
    a = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-a"], env.env())
    b = start_server(env.db_url, tmp_path, [*env.args(), "--node-id", "node-b"], env.env())
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def claim(c: httpx.Client, worker: str, **body: Any) -> list[dict[str, Any]]:
    r = c.post(f"{G}/g/claim", json={"worker": worker, **body})
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


def test_claim_on_one_node_ack_on_the_other_and_failover(two_nodes: tuple[Server, Server]) -> None:
    a, b = two_nodes
    with client(a) as ca, client(b) as cb:
        sid = ca.post("/api/sessions").json()["session_id"]
        assert (
            ca.put(
                f"{G}/g", json={"types": ["job"], "ordering": "none", "ack_timeout_seconds": 2}
            ).status_code
            == 201
        )
        assert cb.get(f"{G}/g").status_code == 200  # the group is shared through the log's database
        r = ca.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "job"}] * 6})
        assert r.status_code == 201
        on_a = claim(ca, "on-a", max=3)
        on_b = claim(cb, "on-b", max=10)
        got_a = {m["event"]["position"] for m in on_a}
        got_b = {m["event"]["position"] for m in on_b}
        assert len(got_a) == 3 and len(got_b) == 3 and not got_a & got_b
        acked = cb.post(f"{G}/g/ack", json={"delivery_ids": [on_a[0]["delivery_id"]]}).json()
        assert acked == {"acked": 1, "unknown": []}
        assert (
            ca.post(f"{G}/g/ack", json={"delivery_ids": [m["delivery_id"] for m in on_b]}).json()[
                "acked"
            ]
            == 3
        )
        # a long poll on B is woken by an append made through A
        woken: list[list[dict[str, Any]]] = []
        waiter = threading.Thread(
            target=lambda: woken.append(
                claim(httpx.Client(base_url=b.base_url, timeout=60), "on-b", wait_seconds=30, max=1)
            )
        )
        waiter.start()
        (extra,) = [
            ca.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "job"}]}).json()[
                "last_position"
            ]
        ]
        a.kill()  # node A dies holding two deliveries
        waiter.join(timeout=60)
        assert [m["event"]["position"] for m in woken[0]] in (
            [extra],
            [sorted(got_a)[1]],
            [sorted(got_a)[2]],
        )
        cb.post(f"{G}/g/ack", json={"delivery_ids": [m["delivery_id"] for m in woken[0]]})
        rest: list[dict[str, Any]] = []
        for _ in range(20):
            rest += claim(cb, "on-b", max=10, wait_seconds=3)
            taken = {m["event"]["position"] for m in rest} | {
                m["event"]["position"] for m in woken[0]
            }
            if taken >= (got_a - {on_a[0]["event"]["position"]}) | {extra}:
                break
        assert (
            cb.post(f"{G}/g/ack", json={"delivery_ids": [m["delivery_id"] for m in rest]}).json()[
                "unknown"
            ]
            == []
        )
        view = cb.get(f"{G}/g").json()
        assert (view["in_flight"], view["ready"], view["parked"]) == (0, 0, 0)
        assert view["checkpoint"] == view["head"]
