"""Bad input on consumer-group and producer routes, on real servers over SQLite and
PostgreSQL: every refusal is a clear 4xx, never a 500, and nothing is appended or created."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.pg import pg_dsn  # noqa: F401
from tests.support.server import Server
from tests.support.sessions_support import BACKENDS, backend_server, client, head

G = "/api/subscriptions"
INT64 = 2**63 - 1


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from backend_server(request, tmp_path_factory)


def new_session(c: httpx.Client) -> str:
    r = c.post("/api/sessions")
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def new_group(c: httpx.Client, **settings: Any) -> str:
    name = "r-" + uuid.uuid4().hex[:8]
    r = c.put(f"{G}/{name}", json={"from": "end", **settings})  # none of other tests' events
    assert r.status_code == 201, r.text
    return name


def test_delivery_ids_that_are_not_ours_are_unknown_not_500(server: Server) -> None:
    """'²' passes str.isdigit (int() then raised) and 20 digits overflow int64: both
    were 500s, and on SQLite they failed the whole group commit they rode in."""
    with client(server) as c:
        sid = new_session(c)
        name = new_group(c, types=["job"])
        assert c.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "job"}]}).is_success
        r = c.post(f"{G}/{name}/claim", json={"worker": "w"})
        [message] = r.json()["messages"]
        odd = ["\u00b2:1", "1:\u00b2", "\u0661:1", "99999999999999999999:1", f"1:{INT64 + 1}"]
        for action in ("ack", "nack"):
            r = c.post(f"{G}/{name}/{action}", json={"delivery_ids": odd})
            assert r.status_code == 200, r.text
            assert r.json()["unknown"] == odd
        r = c.post(f"{G}/{name}/ack", json={"delivery_ids": [message["delivery_id"]]})
        assert r.json() == {"acked": 1, "unknown": []}


@pytest.mark.parametrize("start", [2**63, 2**64 - 1, "past-head"])
def test_a_start_past_the_log_or_int64_is_400_and_creates_nothing(
    server: Server, start: int | str
) -> None:
    with client(server) as c:
        name = "r-" + uuid.uuid4().hex[:8]
        position = head(c) + 1000 if start == "past-head" else start
        r = c.put(f"{G}/{name}", json={"from": position})
        assert r.status_code == 400 and "from" in r.json()["error"], r.text
        assert c.get(f"{G}/{name}").status_code == 404
        r = c.put(f"{G}/{name}", json={"from": head(c)})  # the head itself: nothing missed
        assert r.status_code == 201, r.text


def test_nul_in_group_filters_worker_or_reason_is_400(server: Server) -> None:
    """PostgreSQL's text cannot hold NUL: a group stored with one made every claim a 500."""
    with client(server) as c:
        for field in ("types", "sessions"):
            name = "r-" + uuid.uuid4().hex[:8]
            r = c.put(f"{G}/{name}", json={field: ["a\u0000b"]})
            assert r.status_code == 400 and field in r.json()["error"], r.text
            assert c.get(f"{G}/{name}").status_code == 404
        sid = new_session(c)
        name = new_group(c, types=["job"])
        assert c.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "job"}]}).is_success
        r = c.post(f"{G}/{name}/claim", json={"worker": "w\u0000"})
        assert r.status_code == 400 and "worker" in r.json()["error"], r.text
        assert c.get(f"{G}/{name}").json()["in_flight"] == 0
        [message] = c.post(f"{G}/{name}/claim", json={"worker": "w"}).json()["messages"]
        body = {"delivery_ids": [message["delivery_id"]], "action": "park", "reason": "x\u0000"}
        r = c.post(f"{G}/{name}/nack", json=body)
        assert r.status_code == 400 and "reason" in r.json()["error"], r.text
        assert c.get(f"{G}/{name}").json()["parked"] == 0


def test_parked_limit_with_a_non_ascii_digit_is_400(server: Server) -> None:
    with client(server) as c:
        name = new_group(c)
        assert c.get(f"{G}/{name}/parked", params={"limit": "\u00b2"}).status_code == 400


@pytest.mark.parametrize(
    "event",
    [
        {"type": "t", "timestamp": "0001-01-01T00:00:00+01:00"},  # year 0 in UTC
        {"type": "t", "timestamp": "9999-12-31T23:59:59-01:00"},  # year 10000 in UTC
        {"type": "a\u0000b"},
        {"type": "t", "id": "x\u0000y"},
    ],
)
def test_producer_refusals_are_400_and_append_nothing(
    server: Server, event: dict[str, str]
) -> None:
    with client(server) as c:
        sid = new_session(c)
        before = head(c)
        r = c.post(f"/api/sessions/{sid}/events", json={"events": [{"type": "ok"}, event]})
        assert r.status_code == 400 and "events[1]" in r.json()["error"], r.text
        assert head(c) == before


def test_producer_timestamps_at_the_edges_of_the_range_are_kept(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        for stamp in ("0001-01-01T00:00:00", "9999-12-31T23:59:59+00:00"):
            body = {"events": [{"type": "t", "timestamp": stamp}]}
            r = c.post(f"/api/sessions/{sid}/events", json=body)
            assert r.status_code == 201, r.text
