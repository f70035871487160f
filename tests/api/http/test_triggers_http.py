"""Trigger routes, webhooks and restarts against a real `hivelog serve` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventstore import open_store
from projections.envelope import decode, payload
from tests.support.server import Server
from tests.support.sessions_support import Env, head, make_colony, make_env

TIMER = {
    "id": "tick",
    "name": "Tick",
    "trigger_type": "timer",
    "trigger_config": {"interval_minutes": 60},
    "task": "tick task",
}
HOOK = {
    "id": "gh",
    "name": "GitHub",
    "trigger_type": "webhook",
    "trigger_config": {"path": "/github", "methods": ["POST"], "secret": "s3cret"},
    "task": "handle push",
}
OPEN_HOOK = {
    "id": "open",
    "name": "Open",
    "trigger_type": "webhook",
    "trigger_config": {"path": "/open", "methods": ["POST", "PUT"]},
    "task": "anything",
}


def fast_timer(tid: str, interval_s: float, **extra: Any) -> dict[str, Any]:
    config = {"interval_minutes": interval_s / 60, **extra}
    return {"id": tid, "name": tid, "trigger_type": "timer", "trigger_config": config, "task": "t"}


def open_session(env: Env, server: Server, triggers: list[dict[str, Any]], name: str = "c1") -> str:
    colony = make_colony(env.root, name, triggers=triggers)
    r = httpx.post(f"{server.base_url}/api/sessions", json={"agent_path": str(colony)}, timeout=30)
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def triggers_of(c: httpx.Client, sid: str) -> dict[str, dict[str, Any]]:
    r = c.get(f"/api/sessions/{sid}/triggers")
    assert r.status_code == 200, r.text
    return {t["id"]: t for t in r.json()["triggers"]}


def wait_until(check: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll a condition a bounded number of times (no timing is asserted)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def log_payloads(db_url: str, sid: str, types: set[str]) -> list[tuple[str, str, dict[str, Any]]]:
    async def read() -> list[tuple[str, str, dict[str, Any]]]:
        store = await open_store(db_url)
        try:
            events = await store.read(sid)
        finally:
            await store.close()
        return [(e.type, e.event_id, payload(decode(e))) for e in events if e.type in types]

    return asyncio.run(read())


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


# -- routes ---------------------------------------------------------------------------


def test_trigger_routes_hive_codes_and_bodies(env: Env) -> None:
    server = env.start()
    try:
        sid = open_session(env, server, [TIMER, HOOK])
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            listed = triggers_of(c, sid)
            assert listed["tick"]["active"] is True and listed["tick"]["fire_count"] == 0
            assert listed["tick"]["next_fire_at"] is not None
            assert 3590 <= listed["tick"]["next_fire_in"] <= 3600
            assert listed["gh"]["next_fire_at"] is None
            detail = c.get(f"/api/sessions/{sid}").json()
            entry = next(e for e in detail["entry_points"] if e["id"] == "tick")
            assert entry["next_fire_at"] == listed["tick"]["next_fire_at"]

            base = f"/api/sessions/{sid}/triggers"
            r = c.patch(
                f"{base}/tick", json={"task": "new task", "trigger_config": {"cron": "0 9 * * *"}}
            )
            assert r.status_code == 200
            assert r.json() == {
                "trigger_id": "tick",
                "task": "new task",
                "trigger_config": {"cron": "0 9 * * *"},
            }
            assert c.post(f"{base}/tick/deactivate").json() == {
                "status": "deactivated",
                "trigger_id": "tick",
            }
            assert c.post(f"{base}/tick/deactivate").json()["status"] == "already_inactive"
            assert c.post(f"{base}/nope/deactivate").json()["status"] == "already_inactive"
            assert triggers_of(c, sid)["tick"]["next_fire_at"] is None
            assert c.post(f"{base}/tick/activate").json() == {
                "status": "activated",
                "trigger_id": "tick",
            }
            assert c.post(f"{base}/tick/activate").json()["status"] == "already_active"
            r = c.post(f"{base}/tick/run")
            assert r.status_code == 200 and r.json() == {"status": "fired", "trigger_id": "tick"}
            after = triggers_of(c, sid)["tick"]
            assert after["fire_count"] == 1 and after["last_fired_at"] is not None
            assert after["active"] is True
            assert c.post(f"/api/sessions/{sid}/triggers/nope/run").status_code == 404
            assert c.post("/api/sessions/nobody/triggers/tick/run").status_code == 404
            assert c.get("/api/sessions/nobody/triggers").status_code == 404
    finally:
        server.stop()
    fired = log_payloads(env.db_url, sid, {"trigger_fired"})
    assert [p.get("forced") for _, _, p in fired] == [True]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("not json", 400, "Invalid JSON body"),
        ([1], 400, "Request body must be a JSON object"),
        ({}, 400, "Provide at least one of 'task' or 'trigger_config'"),
        ({"task": 5}, 400, "'task' must be a string"),
        (
            {"task": "x" * (256 * 1024)},  # its fire events would all be refused (1 MiB: 4x)
            400,
            "'task' and 'trigger_config' together may take at most 262144 bytes as JSON",
        ),
        ({"task": "ok", "trigger_config": []}, 400, "'trigger_config' must be an object"),
        ({"task": "ok", "trigger_config": {"cron": "bad"}}, 400, "Invalid cron expression: bad"),
        (
            {"task": "ok", "trigger_config": {"interval_minutes": -1}},
            400,
            "'trigger_config.interval_minutes' must be > 0",
        ),
        (
            {"trigger_config": {"interval_minutes": 5, "timezone": "Nowhere/X"}},
            400,
            "Unknown time zone: 'Nowhere/X'",
        ),
    ],
)
def test_bad_patch_is_refused_whole_and_appends_nothing(
    env: Env, body: Any, status: int, message: str
) -> None:
    server = env.start()
    try:
        sid = open_session(env, server, [TIMER])
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            before = head(c)
            content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            r = c.patch(
                f"/api/sessions/{sid}/triggers/tick",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert (r.status_code, r.json()) == (status, {"error": message})
            assert head(c) == before
            assert triggers_of(c, sid)["tick"]["task"] == "tick task"  # no partial update
            r = c.patch(f"/api/sessions/{sid}/triggers/ghost", content=b"garbage")
            assert (r.status_code, r.json()) == (404, {"error": "Trigger 'ghost' not found"})
            assert head(c) == before
    finally:
        server.stop()


# -- real time ------------------------------------------------------------------------


def test_sub_second_interval_fires_on_its_grid_in_real_time(env: Env) -> None:
    server = env.start()
    try:
        sid = open_session(env, server, [fast_timer("fast", 0.3)])
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            wait_until(lambda: triggers_of(c, sid)["fast"]["fire_count"] >= 4)
    finally:
        server.stop()
    fired = [p for _, _, p in log_payloads(env.db_url, sid, {"trigger_fired"})]
    slots = [p["scheduled_at"] for p in fired]
    assert all(b - a == 300 for a, b in itertools.pairwise(slots))  # anchored, no drift
    assert [p["fire_count"] for p in fired] == list(range(1, len(fired) + 1))


# -- restarts -------------------------------------------------------------------------


def test_sigkill_keeps_schedule_counters_and_deactivation(env: Env) -> None:
    server = env.start()
    sid = open_session(env, server, [fast_timer("on", 0.25), fast_timer("off", 0.25)])
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        assert c.post(f"/api/sessions/{sid}/triggers/off/deactivate").status_code == 200
        wait_until(lambda: triggers_of(c, sid)["on"]["fire_count"] >= 2)
        before = triggers_of(c, sid)
    server.kill()
    server = env.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            after = triggers_of(c, sid)
            assert after["on"]["fire_count"] >= before["on"]["fire_count"]
            assert after["off"]["active"] is False and after["off"]["fire_count"] == 0
            target = after["on"]["fire_count"] + 2
            wait_until(lambda: triggers_of(c, sid)["on"]["fire_count"] >= target)
            assert triggers_of(c, sid)["off"]["fire_count"] == 0
    finally:
        server.stop()
    fired = [p for _, _, p in log_payloads(env.db_url, sid, {"trigger_fired"})]
    assert {p["trigger_id"] for p in fired} == {"on"}
    slots = [p["scheduled_at"] for p in fired]
    assert len(slots) == len(set(slots))
    first = slots[0]
    assert all((s - first) % 250 == 0 for s in slots)  # the same grid across the restart


def test_downtime_fires_follow_the_policy_after_sigkill(env: Env) -> None:
    server = env.start()
    triggers = [
        fast_timer("skip", 0.2, misfire="skip", misfire_grace_seconds=0),
        fast_timer("once", 0.2, misfire="fire_once", misfire_grace_seconds=0),
    ]
    sid = open_session(env, server, triggers)
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        wait_until(lambda: triggers_of(c, sid)["skip"]["fire_count"] >= 1)
    server.kill()
    time.sleep(1.5)  # downtime: several slots fall due while nothing runs
    server = env.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            wait_until(lambda: all(t["missed_count"] > 0 for t in triggers_of(c, sid).values()))
    finally:
        server.stop()
    events = log_payloads(env.db_url, sid, {"missed_triggers", "trigger_fired"})
    missed = {p["trigger_id"]: p for kind, _, p in events if kind == "missed_triggers"}
    assert missed["skip"]["decision"] == "skip" and missed["once"]["decision"] == "fire_once"
    for tid, most in (("skip", 1), ("once", 1)):
        window = (missed[tid]["first_missed_at"], missed[tid]["handled_through"])
        fired = [
            p["scheduled_at"]
            for kind, _, p in events
            if kind == "trigger_fired"
            and p["trigger_id"] == tid
            and window[0] <= p["scheduled_at"] <= window[1]
        ]
        assert len(fired) <= most and missed[tid]["count"] >= 2
        if tid == "once":  # the backlog is coalesced into exactly one fire, the newest slot
            assert fired == [window[1]]


def test_no_fire_is_ever_recorded_twice_over_random_crash_points(env: Env) -> None:
    rng = random.Random(20261124)
    server = env.start()
    sid = open_session(
        env, server, [fast_timer("a", 0.15, misfire="fire_all"), fast_timer("b", 0.2)]
    )
    for _ in range(5):
        time.sleep(rng.uniform(0.05, 0.8))
        server.kill()
        server = env.start()
    time.sleep(0.5)
    server.stop()
    events = log_payloads(
        env.db_url, sid, {"trigger_fired", "trigger_fire_skipped", "missed_triggers"}
    )
    ids = [event_id for _, event_id, _ in events]
    assert len(ids) == len(set(ids))
    for tid, step in (("a", 150), ("b", 200)):
        fired = [p for kind, _, p in events if kind == "trigger_fired" and p["trigger_id"] == tid]
        slots = [p["scheduled_at"] for p in fired]
        assert len(slots) == len(set(slots)) and slots == sorted(slots)
        assert all((s - slots[0]) % step == 0 for s in slots)
        assert [p["fire_count"] for p in fired] == list(range(1, len(fired) + 1))


# -- webhooks -------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_webhooks_over_http(env: Env) -> None:
    server = env.start()
    try:
        sid = open_session(env, server, [HOOK, OPEN_HOOK])
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            body = b'{"ref": "main"}'
            before = head(c)
            assert c.post("/api/webhooks/github", content=body).status_code == 401
            bad = {"x-hub-signature-256": sign("wrong", body)}
            assert c.post("/api/webhooks/github", content=body, headers=bad).status_code == 401
            assert c.post("/api/webhooks/unknown", content=body).status_code == 404
            assert c.get("/api/webhooks/github").status_code == 405
            assert head(c) == before
            headers = {
                "x-hub-signature-256": sign("s3cret", body),
                "content-type": "application/json",
                "authorization": "Bearer top-secret",
                "cookie": "session=abc",
                "x-github-delivery": "delivery-1",
                "x-custom": "kept",
            }
            r = c.post("/api/webhooks/github?x=1", content=body, headers=headers)
            assert r.status_code == 202, r.text
            assert r.json()["fired"] == [{"session_id": sid, "trigger_id": "gh"}]
            again = c.post("/api/webhooks/github?x=1", content=body, headers=headers)
            assert again.status_code == 202 and again.json()["fired"] == []
            assert again.json()["duplicates"] == [{"session_id": sid, "trigger_id": "gh"}]
            assert c.put("/api/webhooks/open", content=b"plain text").status_code == 202
            assert triggers_of(c, sid)["gh"]["fire_count"] == 1
            assert c.post(f"/api/sessions/{sid}/triggers/open/deactivate").status_code == 200
            assert c.post("/api/webhooks/open", content=b"x").status_code == 404
    finally:
        server.stop()
    events = log_payloads(env.db_url, sid, {"webhook_received", "trigger_fired"})
    kinds = [(kind, p["trigger_id"]) for kind, _, p in events]
    assert kinds == [
        ("webhook_received", "gh"),
        ("trigger_fired", "gh"),
        ("webhook_received", "open"),
        ("trigger_fired", "open"),
    ]
    received = events[0][2]
    assert received["payload"] == {"ref": "main"} and received["query_params"] == {"x": "1"}
    assert received["headers"]["authorization"] == "[redacted]"
    assert received["headers"]["cookie"] == "[redacted]"
    assert received["headers"]["x-hub-signature-256"] == "[redacted]"
    assert received["headers"]["x-custom"] == "kept"
    assert "top-secret" not in json.dumps(events)
    assert events[2][2]["payload"] == "plain text"
