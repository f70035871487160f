"""POST /api/sessions/{id}/events on a real server: every rule, and nothing appended on a refusal."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import httpx
import pytest

from projections.reserved import COMMAND_ONLY_TYPES, RUNTIME_TYPES_ALSO_DECIDED
from tests.support.server import Server
from tests.support.sessions_support import client, head
from tests.support.sse_client import read_sse

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    return module_server


def new_session(c: httpx.Client) -> str:
    r = c.post("/api/sessions")
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def post(c: httpx.Client, sid: str, body: object) -> httpx.Response:
    return c.post(f"/api/sessions/{sid}/events", json=body)


def history(c: httpx.Client, sid: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = c.get(f"/api/sessions/{sid}/events/history").json()["events"]
    return events


def test_append_lands_in_the_session_stream_in_hivelogs_envelope(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        before = len(history(c, sid))
        r = post(
            c,
            sid,
            {
                "events": [
                    {"type": "llm_turn_complete", "data": {"text": "hi"}, "node_id": "n1"},
                    {
                        "type": "tool_call_started",
                        "timestamp": "2026-01-02T03:04:05",
                        "run_id": "r1",
                        "unknown_key": 1,
                    },
                ]
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["session_id"] == sid and body["count"] == 2
        assert body["last_version"] == body["first_version"] + 1
        assert body["last_position"] == head(c)
        events = history(c, sid)
        assert len(events) == before + 2
        first, second = events[-2:]
        assert first["type"] == "llm_turn_complete" and first["data"] == {"text": "hi"}
        assert first["stream_id"] == "queen" and first["node_id"] == "n1"
        assert set(first) >= {"execution_id", "correlation_id", "colony_id", "run_id", "timestamp"}
        assert second["data"] == {} and second["run_id"] == "r1"
        assert second["timestamp"] == "2026-01-02T03:04:05+00:00"
        assert second["position"] == body["last_position"]


def test_sse_sees_produced_events(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        after = head(c)

    async def go() -> list[str]:
        url = f"{server.base_url}/api/sessions/{sid}/events?after={after}&types=my_event"
        async with httpx.AsyncClient(timeout=30) as ac, ac.stream("GET", url) as r:
            posted = await ac.post(
                f"{server.base_url}/api/sessions/{sid}/events",
                json={"events": [{"type": "my_event", "data": {"k": 1}}]},
            )
            assert posted.status_code == 201
            got = await asyncio.wait_for(read_sse(r, 1), 30)
        return [json.loads(m.data or "")["type"] for m in got]

    assert asyncio.run(go()) == ["my_event"]


def test_identical_retry_answers_200_and_appends_nothing(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        body = {"events": [{"type": "x", "id": "retry-1"}, {"type": "y", "id": "retry-2"}]}
        first = post(c, sid, body)
        assert first.status_code == 201
        at = head(c)
        again = post(c, sid, body)
        assert again.status_code == 200 and again.json() == first.json()
        assert head(c) == at
        # with the expected version it was appended at, too
        versioned = {**body, "expected_version": first.json()["first_version"] - 1}
        assert post(c, sid, versioned).status_code == 200
        # the same ids anywhere else are a conflict
        other = new_session(c)
        at = head(c)
        clash = post(c, other, body)
        assert clash.status_code == 409 and "retry-1" in clash.json()["error"]
        partly = post(c, sid, {"events": [{"type": "x", "id": "retry-1"}, {"type": "z"}]})
        assert partly.status_code == 409
        assert head(c) == at


@pytest.mark.parametrize("event_type", sorted(COMMAND_ONLY_TYPES))
def test_command_only_types_are_refused(server: Server, event_type: str) -> None:
    with client(server) as c:
        sid = new_session(c)
        at = head(c)
        r = post(c, sid, {"events": [{"type": "fine"}, {"type": event_type}]})
        assert r.status_code == 400
        assert event_type in r.json()["error"] and "events[1].type" in r.json()["error"]
        assert head(c) == at


def test_unknown_erased_and_cold_sessions(server: Server) -> None:
    with client(server) as c:
        at = head(c)
        r = post(c, "no_such_session", {"events": [{"type": "x"}]})
        assert r.status_code == 404 and "no_such_session" in r.json()["error"]
        assert post(c, "bad..id", {"events": [{"type": "x"}]}).status_code == 400
        assert head(c) == at
        cold = new_session(c)
        assert c.delete(f"/api/sessions/{cold}").status_code == 200
        late = post(c, cold, {"events": [{"type": "late_flush"}]})
        assert late.status_code == 201  # a runtime may flush after the stop
        assert c.delete(f"/api/sessions/history/{cold}").status_code == 200
        at = head(c)
        assert post(c, cold, {"events": [{"type": "x"}]}).status_code == 404
        assert head(c) == at


def test_wrong_expected_version(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        version = len(history(c, sid))
        at = head(c)
        r = post(c, sid, {"events": [{"type": "x"}], "expected_version": version - 1})
        assert r.status_code == 409 and r.json()["current_version"] == version
        assert head(c) == at
        ok = post(c, sid, {"events": [{"type": "x"}], "expected_version": version})
        assert ok.status_code == 201 and ok.json()["first_version"] == version + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "'events' is required"),
        ({"events": []}, "events"),
        ({"events": [{"type": "x"}] * 1001}, "events"),
        ({"events": {"type": "x"}}, "events"),
        ({"events": [{}]}, "'events[0].type' is required"),
        ({"events": [{"type": ""}]}, "events[0].type"),
        ({"events": [{"type": "   "}]}, "events[0].type"),
        ({"events": [{"type": 5}]}, "events[0].type"),
        ({"events": [{"type": "x" * 257}]}, "events[0].type"),
        ({"events": [{"type": "x", "data": [1]}]}, "events[0].data"),
        ({"events": [{"type": "x", "id": ""}]}, "events[0].id"),
        ({"events": [{"type": "x", "id": "i" * 129}]}, "events[0].id"),
        ({"events": [{"type": "x", "timestamp": "yesterday"}]}, "events[0].timestamp"),
        ({"events": [{"type": "x", "node_id": 3}]}, "events[0].node_id"),
        ({"events": [{"type": "x"}], "expected_version": -1}, "expected_version"),
        ({"events": [{"type": "x"}], "expected_version": "1"}, "expected_version"),
        ({"events": [{"type": "x", "id": "d"}, {"type": "y", "id": "d"}]}, "appears twice"),
        ([1], "JSON object"),
    ],
)
def test_malformed_bodies_name_the_field(server: Server, body: object, field: str) -> None:
    with client(server) as c:
        sid = new_session(c)
        at = head(c)
        r = post(c, sid, body)
        assert r.status_code == 400, r.text
        assert field in r.json()["error"], r.json()
        assert head(c) == at


def test_not_json_and_oversize(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)
        at = head(c)
        r = c.post(f"/api/sessions/{sid}/events", content=b"{nope")
        assert r.status_code == 400
        big = {"events": [{"type": "x", "data": {"blob": "a" * (1024 * 1024)}}]}
        r = post(c, sid, big)
        assert r.status_code == 413
        assert head(c) == at


def _decided_types() -> set[str]:
    """String literals passed as the event type to the deciders' event builders."""
    builders = {"new_event", "_event", "_missed"}
    found: set[str] = set()
    for path in [*ROOT.glob("projections/*.py"), *ROOT.glob("api/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name not in builders:
                continue
            for arg in node.args[:2]:
                text = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(text, str) and text.islower() and "_" in text:
                    found.add(text)
    return found


def test_every_decided_type_is_classified() -> None:
    """A decider writing a new type must say whether producers may write it too."""
    decided = _decided_types()
    assert {"session_created", "trigger_fired", "queen_phase_changed"} <= decided
    assert decided <= COMMAND_ONLY_TYPES | RUNTIME_TYPES_ALSO_DECIDED, (
        decided - COMMAND_ONLY_TYPES - RUNTIME_TYPES_ALSO_DECIDED
    )
