"""Consumer groups over HTTP on a real server: every rule, restarts and SIGKILL."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import Server
from tests.support.sessions_support import client, make_env

G = "/api/subscriptions"


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    return module_server


def new_session(c: httpx.Client) -> str:
    r = c.post("/api/sessions")
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def produce(c: httpx.Client, sid: str, *types: str, **data: Any) -> list[int]:
    r = c.post(
        f"/api/sessions/{sid}/events", json={"events": [{"type": t, "data": data} for t in types]}
    )
    assert r.status_code == 201, r.text
    last: int = r.json()["last_position"]
    return list(range(last - len(types) + 1, last + 1))


def group(c: httpx.Client, **settings: Any) -> str:
    name = "g-" + uuid.uuid4().hex[:8]
    r = c.put(f"{G}/{name}", json=settings)
    assert r.status_code == 201, r.text
    return name


def claim(c: httpx.Client, name: str, **body: Any) -> list[dict[str, Any]]:
    r = c.post(f"{G}/{name}/claim", json={"worker": "t", **body})
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


def ack(c: httpx.Client, name: str, *ids: str) -> dict[str, Any]:
    r = c.post(f"{G}/{name}/ack", json={"delivery_ids": list(ids)})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def nack(c: httpx.Client, name: str, action: str, *ids: str, **extra: Any) -> dict[str, Any]:
    r = c.post(f"{G}/{name}/nack", json={"delivery_ids": list(ids), "action": action, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def show(c: httpx.Client, name: str) -> dict[str, Any]:
    r = c.get(f"{G}/{name}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_group_crud_and_defaults(server: Server) -> None:
    with client(server) as c:
        name = "crud-" + uuid.uuid4().hex[:6]
        r = c.put(f"{G}/{name}")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["group"] == name
        assert (body["types"], body["sessions"], body["ordering"]) == (None, None, "session")
        assert (body["ack_timeout_seconds"], body["max_retries"], body["max_in_flight"]) == (
            30,
            5,
            1000,
        )
        assert body["checkpoint"] == 0 and body["lag"] == body["head"]
        r = c.put(f"{G}/{name}", json={"types": ["a"], "max_retries": 2})
        assert r.status_code == 200 and r.json()["types"] == ["a"] and r.json()["max_retries"] == 2
        assert name in [g["group"] for g in c.get(G).json()["groups"]]
        assert c.delete(f"{G}/{name}").json() == {"deleted": name}
        assert c.get(f"{G}/{name}").status_code == 404
        assert c.delete(f"{G}/{name}").status_code == 404
        for path in ("claim", "ack", "nack"):
            body_ = {"worker": "w"} if path == "claim" else {"delivery_ids": ["1:1"]}
            assert c.post(f"{G}/{name}/{path}", json=body_).status_code == 404
        assert c.get(f"{G}/{name}/parked").status_code == 404
        assert c.post(f"{G}/{name}/parked/replay").status_code == 404


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"ordering": "random"}, "ordering"),
        ({"from": "middle"}, "from"),
        ({"from": -1}, "from"),
        ({"max_retries": -1}, "max_retries"),
        ({"ack_timeout_seconds": 0}, "ack_timeout_seconds"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"types": "a"}, "types"),
        ({"sessions": [1]}, "sessions"),
    ],
)
def test_bad_group_settings(server: Server, body: dict[str, Any], word: str) -> None:
    with client(server) as c:
        name = "bad-" + uuid.uuid4().hex[:6]
        r = c.put(f"{G}/{name}", json=body)
        assert r.status_code == 400 and word in r.json()["error"], r.text
        assert c.get(f"{G}/{name}").status_code == 404
        assert c.put(f"{G}/bad..name").status_code == 400


def test_bad_claim_ack_nack_bodies(server: Server) -> None:
    with client(server) as c:
        name = group(c)
        for body in ({}, {"worker": ""}, {"worker": "w", "max": 0}, {"worker": "w", "max": 1001}):
            assert c.post(f"{G}/{name}/claim", json=body).status_code == 400
        assert (
            c.post(f"{G}/{name}/claim", json={"worker": "w", "wait_seconds": 61}).status_code == 400
        )
        assert c.post(f"{G}/{name}/ack", json={"delivery_ids": []}).status_code == 400
        r = c.post(f"{G}/{name}/nack", json={"delivery_ids": ["1:1"], "action": "explode"})
        assert r.status_code == 400
        assert c.get(f"{G}/{name}/parked?limit=0").status_code == 400


def test_claim_ack_flow_with_filters(server: Server) -> None:
    with client(server) as c:
        s1, s2 = new_session(c), new_session(c)
        name = group(c, types=["job"], sessions=[s1], ordering="none")
        (p1,) = produce(c, s1, "job", n=1)
        produce(c, s1, "other")
        produce(c, s2, "job")
        (p2,) = produce(c, s1, "job", n=2)
        got = claim(c, name, max=10)
        assert [m["event"]["position"] for m in got] == [p1, p2]
        event = got[0]["event"]
        assert event["session_id"] == s1 and event["type"] == "job" and event["data"] == {"n": 1}
        assert {"version", "timestamp", "stream_id"} <= set(event)
        assert [m["attempt"] for m in got] == [1, 1]
        assert show(c, name)["in_flight"] == 2
        assert ack(c, name, got[0]["delivery_id"], "bogus") == {"acked": 1, "unknown": ["bogus"]}
        assert ack(c, name, got[0]["delivery_id"]) == {
            "acked": 0,
            "unknown": [got[0]["delivery_id"]],
        }
        assert show(c, name)["checkpoint"] == p2 - 1  # all before p2 is handled
        ack(c, name, got[1]["delivery_id"])
        view = show(c, name)
        assert view["in_flight"] == 0 and view["checkpoint"] >= p2 and view["lag"] >= 0
        assert claim(c, name) == []


def test_long_poll_wakes_on_append(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        name = group(c, types=["wake"], **{"from": "end"})
        result: list[list[dict[str, Any]]] = []
        waiter = threading.Thread(
            target=lambda: result.append(
                claim(httpx.Client(base_url=server.base_url, timeout=60), name, wait_seconds=30)
            )
        )
        waiter.start()
        (p,) = produce(c, sid, "wake")
        waiter.join(timeout=60)
        assert not waiter.is_alive()
        assert [m["event"]["position"] for m in result[0]] == [p]
        # nothing there: a long poll ends empty after its wait
        assert claim(c, name, wait_seconds=0.2) == []


def test_timeout_redelivery_parking_and_replay(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        name = group(c, types=["slow"], ack_timeout_seconds=0.3, max_retries=1)
        (p,) = produce(c, sid, "slow")
        (first,) = claim(c, name)
        (second,) = claim(c, name, wait_seconds=10)
        assert second["attempt"] == 2 and second["event"]["position"] == p
        assert ack(c, name, first["delivery_id"])["unknown"] == [first["delivery_id"]]
        assert claim(c, name, wait_seconds=1.5) == []  # timed out again: parked
        view = show(c, name)
        assert (view["parked"], view["in_flight"], view["checkpoint"]) == (1, 0, view["head"])
        parked = c.get(f"{G}/{name}/parked").json()["messages"]
        assert [(m["position"], m["attempts"]) for m in parked] == [(p, 2)]
        assert "timeout" in parked[0]["reason"] and parked[0]["event"]["session_id"] == sid
        assert c.post(f"{G}/{name}/parked/replay").json() == {"replayed": 1}
        (again,) = claim(c, name)
        assert again["attempt"] == 1 and again["event"]["position"] == p
        assert ack(c, name, again["delivery_id"])["acked"] == 1


def test_nack_actions_and_session_ordering(server: Server) -> None:
    with client(server) as c:
        s1, s2 = new_session(c), new_session(c)
        name = group(c, types=["step"], max_retries=3)
        a1, a2 = produce(c, s1, "step", "step")
        (b1,) = produce(c, s2, "step")
        got = claim(c, name)
        assert [m["event"]["position"] for m in got] == [a1, b1]  # a2 waits for a1
        assert (
            nack(c, name, "retry", got[0]["delivery_id"], reason="flaky", delay_seconds=0.2)[
                "nacked"
            ]
            == 1
        )
        assert nack(c, name, "skip", got[1]["delivery_id"]) == {"nacked": 1, "unknown": []}
        (retry,) = claim(c, name, wait_seconds=10)
        assert retry["event"]["position"] == a1 and retry["attempt"] == 2
        nack(c, name, "park", retry["delivery_id"], reason="poison")
        (nxt,) = claim(c, name)  # a parked event no longer holds its session up
        assert nxt["event"]["position"] == a2
        ack(c, name, nxt["delivery_id"])
        parked = c.get(f"{G}/{name}/parked").json()["messages"]
        assert [(m["position"], m["reason"]) for m in parked] == [(a1, "poison")]


def test_state_survives_sigkill_of_the_server(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    server = env.start()
    try:
        with client(server) as c:
            sid = new_session(c)
            name = group(c, types=["t"], ordering="none", max_retries=7)
            produce(c, sid, "t", "t", "t", "t")
            a, b, d, e = claim(c, name, max=4)
            ack(c, name, a["delivery_id"])
            nack(c, name, "park", b["delivery_id"], reason="bad")
            before = show(c, name)
        server.kill()
        server = env.start()
        with client(server) as c:
            after = show(c, name)
            assert {k: after[k] for k in ("in_flight", "parked", "checkpoint", "max_retries")} == {
                k: before[k] for k in ("in_flight", "parked", "checkpoint", "max_retries")
            }
            assert (after["in_flight"], after["parked"]) == (2, 1)
            assert ack(c, name, d["delivery_id"], e["delivery_id"])["acked"] == 2
            assert ack(c, name, a["delivery_id"])["acked"] == 0  # acked before the kill
            assert claim(c, name) == []
    finally:
        server.stop()


def test_shutdown_ends_long_polls(tmp_path: Path) -> None:
    """SIGTERM: a claim waiting for work answers at once, empty, and the server exits."""
    server = make_env(tmp_path).start()
    try:
        with client(server) as c:
            name = group(c)
            answers: list[httpx.Response] = []

            def wait() -> None:
                with httpx.Client(base_url=server.base_url, timeout=60) as long:
                    answers.append(
                        long.post(f"{G}/{name}/claim", json={"worker": "w", "wait_seconds": 50})
                    )

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.5)  # let the poll begin (if it has not, it is refused or empty too)
            server.process.send_signal(signal.SIGTERM)
            # uvicorn waits for open requests: with the poll still open this would time out
            assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
            waiter.join(timeout=60)
            assert answers and answers[0].status_code == 200
            assert answers[0].json() == {"messages": []}
    finally:
        server.stop()
