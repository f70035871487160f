"""What a claim finds, on real servers (SQLite and PostgreSQL): one session's backlog,
its first event in flight, must not keep the other sessions' events from going out
(`ordering: "session"`), and a matching event far past the cursor is found at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.pg import pg_dsn  # noqa: F401
from tests.support.server import Server
from tests.support.sessions_support import BACKENDS, backend_server, client

G = "/api/subscriptions"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from backend_server(request, tmp_path_factory)


@pytest.mark.parametrize("backlog", [600, 3000])
def test_a_long_backlog_of_one_session_does_not_starve_the_others(
    server: Server, backlog: int
) -> None:
    """The claim buffered 500 rows past the cursor: all of session A, whose first event
    was out, so B's event after them was never delivered until A's backlog drained."""
    with client(server) as c:
        name = "hol-" + uuid.uuid4().hex[:8]
        assert c.put(f"{G}/{name}", json={"from": "end", "types": ["job"]}).status_code == 201
        a, b = (c.post("/api/sessions").json()["session_id"] for _ in range(2))
        for _ in range(backlog // 600):
            r = c.post(f"/api/sessions/{a}/events", json={"events": [{"type": "job"}] * 600})
            assert r.status_code == 201, r.text
        r = c.post(f"/api/sessions/{b}/events", json={"events": [{"type": "job"}] * 2})
        assert r.status_code == 201, r.text
        first = c.post(f"{G}/{name}/claim", json={"worker": "w", "max": 10}).json()["messages"]
        assert [m["event"]["session_id"] for m in first] == [a]  # A's first; A is now held
        seen: list[str] = []
        for _ in range(3):  # each claim finds at most one more of B (session order)
            r = c.post(f"{G}/{name}/claim", json={"worker": "w", "max": 10})
            messages = r.json()["messages"]
            assert [m["event"]["session_id"] for m in messages] in ([], [b])
            seen += [m["event"]["session_id"] for m in messages]
            ids = [m["delivery_id"] for m in messages]
            if ids:
                assert c.post(f"{G}/{name}/ack", json={"delivery_ids": ids}).json()["acked"] == 1
        assert seen == [b, b]
        group = c.get(f"{G}/{name}").json()
        assert group["in_flight"] == 1 and group["ready"] == backlog - 1


def test_a_rare_type_far_past_the_cursor_is_claimed_at_once(server: Server) -> None:
    """A claim looks 20,000 positions past the cursor: behind 21,000 other events, a
    claim with wait_seconds 0 answered no messages while a matching one was ready."""
    with client(server) as c:
        name = "rare-" + uuid.uuid4().hex[:8]
        assert c.put(f"{G}/{name}", json={"from": "end", "types": ["rare"]}).status_code == 201
        sid = c.post("/api/sessions").json()["session_id"]
        for _ in range(21):
            r = c.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "noise"}] * 1000})
            assert r.status_code == 201, r.text
        r = c.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "rare"}]})
        position = r.json()["last_position"]
        r = c.post(f"{G}/{name}/claim", json={"worker": "w", "wait_seconds": 0})
        assert [m["event"]["position"] for m in r.json()["messages"]] == [position]
        r = c.post(f"{G}/{name}/claim", json={"worker": "w", "wait_seconds": 0})
        assert r.json()["messages"] == []
