"""hive 54fd8db's session routes against a real `hivelog serve` on 127.0.0.1.

Every route and rule of the newer contract that hivelog serves from its log, next
to the 3c390c9e shapes: /api/sessions/live, snapshot, presence, trigger list and
create, colony_id and the fork, colony session lists, history cursors and seq,
the per-session SSE opening, resolve_missed, and the runtime-only routes' honest
answers. Each refusal is checked to append nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventstore import NewEvent
from projections.envelope import iso_utc
from tests.support.server import Server, start_server
from tests.support.sessions_support import Env, client, head, make_colony, make_env
from tests.support.sse_client import read_sse, store_at

WAIT = 20.0


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@pytest.fixture
def server(env: Env) -> Iterator[Server]:
    srv = start_server(env.db_url, env.tmp, env.args(), {**env.env(), "HIVELOG_LIVE_POLL": "0.1"})
    try:
        yield srv
    finally:
        srv.stop()


def new_session(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post("/api/sessions", json=body)
    assert r.status_code == 201, r.text
    value: dict[str, Any] = r.json()
    return value


def wait_until(check: Callable[[], bool], limit: float = WAIT) -> None:
    """Poll a bounded number of times; no timing is asserted."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def hive_event(
    type_: str, data: dict[str, Any], *, ts: float | None = None, **env: Any
) -> NewEvent:
    body = {
        "type": type_,
        "stream_id": env.get("stream_id", "queen"),
        "node_id": None,
        "execution_id": env.get("execution_id"),
        "data": data,
        "timestamp": iso_utc(ts if ts is not None else time.time()),
        "correlation_id": None,
        "colony_id": None,
        "run_id": None,
    }
    return NewEvent(type_, body)


def append(env: Env, sid: str, *evs: NewEvent) -> None:
    async def run() -> None:
        async with store_at(env.db_url) as store:
            await store.append(sid, list(evs))

    asyncio.run(run())


def refused(c: httpx.Client, method: str, url: str, status: int, error: str, **kw: Any) -> None:
    before = head(c)
    r = c.request(method, url, **kw)
    assert r.status_code == status, (url, r.text)
    assert r.json()["error"] == error, (url, r.json())
    assert head(c) == before, f"{method} {url} appended events"


# -- /api/sessions/live -------------------------------------------------------------


async def test_live_stream_first_frame_at_once_then_on_change(server: Server) -> None:
    with client(server) as c:
        first = new_session(c)["session_id"]
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=WAIT) as ac,
        ac.stream("GET", "/api/sessions/live") as r,
    ):
        assert r.status_code == 200  # not taken as a session id
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        lines = r.aiter_lines()

        async def frame() -> dict[str, Any]:
            event = None
            async for line in lines:
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    assert event == "snapshot"
                    value: dict[str, Any] = json.loads(line[5:])
                    return value
            raise AssertionError("stream ended")

        body = await asyncio.wait_for(frame(), WAIT)
        assert body["network"] == {
            "degraded": False,
            "reason": None,
            "since_epoch": None,
            "last_event_epoch": None,
        }
        (row,) = body["sessions"]
        assert row["session_id"] == first
        assert row["is_executing"] is False and row["active_worker_count"] == 0
        assert {"queen_busy_reason", "park_reason", "current_tool_name", "phase"} <= set(row)
        second = (await ac.post("/api/sessions", json={})).json()["session_id"]
        body = await asyncio.wait_for(frame(), WAIT)
        assert [s["session_id"] for s in body["sessions"]] == sorted([first, second])
        await ac.delete(f"/api/sessions/{first}")
        body = await asyncio.wait_for(frame(), WAIT)
        assert [s["session_id"] for s in body["sessions"]] == [second]


# -- snapshot and presence ----------------------------------------------------------


def test_snapshot_folds_activity_and_the_stale_rule(env: Env, server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)["session_id"]
        snap = c.get(f"/api/sessions/{sid}/snapshot").json()
        assert snap["activity"] is None and snap["queen_busy_reason"] is None
        version = snap["snapshot_seq"]
        append(
            env,
            sid,
            hive_event("loop_state_changed", {"activity": "executing"}),
            hive_event("execution_started", {}, execution_id="ex1"),
            hive_event("tool_call_started", {"tool_use_id": "t1", "tool_name": "web_search"}),
            hive_event(
                "tool_call_started", {"tool_use_id": "w", "tool_name": "x"}, stream_id="worker:1"
            ),
        )
        wait_until(lambda: c.get(f"/api/sessions/{sid}/snapshot").json()["snapshot_seq"] > version)
        snap = c.get(f"/api/sessions/{sid}/snapshot").json()
        assert snap["is_executing"] and snap["queen_busy_reason"] == "tool"
        assert [t["name"] for t in snap["current_tool_calls"]] == ["web_search"]  # no worker
        assert snap["current_execution_id"] == "ex1"
        version = snap["snapshot_seq"]
        append(
            env,
            sid,
            hive_event("tool_call_completed", {"tool_use_id": "t1"}),
            hive_event("client_input_requested", {"prompt": "which one?"}),
            hive_event("loop_state_changed", {"activity": "awaiting_user", "park_reason": "ask"}),
        )
        wait_until(lambda: c.get(f"/api/sessions/{sid}/snapshot").json()["snapshot_seq"] > version)
        snap = c.get(f"/api/sessions/{sid}/snapshot").json()
        assert snap["awaiting_input"] and snap["queen_busy_reason"] == "awaiting_input"
        assert snap["pending_questions"] == {"prompt": "which one?"}
        assert snap["park_reason"] == "ask" and snap["current_tool_calls"] == []
        assert snap["last_event_seq"] == snap["snapshot_seq"] - 1
        # executing, but the last queen event is 301 s old: interrupted, cause "stale"
        old = time.time() - 400
        append(
            env,
            "stale-1",
            hive_event("session_created", {"session_id": "stale-1"}, ts=old),
            hive_event("loop_state_changed", {"activity": "executing"}, ts=old + 99),
        )
        wait_until(lambda: c.get("/api/sessions/stale-1/snapshot").status_code == 200)
        snap = c.get("/api/sessions/stale-1/snapshot").json()
        assert (snap["activity"], snap["interrupt_cause"]) == ("interrupted", "stale")
        assert snap["queen_busy_reason"] == "interrupted"
        # resumed: the fold starts over
        c.delete(f"/api/sessions/{sid}")
        refused(c, "GET", f"/api/sessions/{sid}/snapshot", 404, "session not found")
        new_session(c, queen_resume_from=sid)
        assert c.get(f"/api/sessions/{sid}/snapshot").json()["activity"] is None
        refused(c, "GET", "/api/sessions/nope/snapshot", 404, "session not found")


def test_presence_answers_live_and_records_nothing(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)["session_id"]
        before = head(c)
        r = c.post(f"/api/sessions/{sid}/presence")  # no body, no content type (hive's FE)
        assert r.status_code == 200 and r.json() == {"ok": True, "resumed": False}
        assert head(c) == before
        refused(c, "POST", "/api/sessions/nope/presence", 404, "Session 'nope' not found")
        c.delete(f"/api/sessions/{sid}")
        refused(c, "POST", f"/api/sessions/{sid}/presence", 404, f"Session '{sid}' not found")


# -- triggers: list in both shapes, create ---------------------------------------------


def test_create_trigger_checks_in_hive_order_and_appends_nothing(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)["session_id"]
        url = f"/api/sessions/{sid}/triggers"
        refused(c, "POST", "/api/sessions/nope/triggers", 404, "Session 'nope' not found", json={})
        cases: list[tuple[Any, str]] = [
            ({}, "'name' is required"),
            ({"name": "  ", "task": "t"}, "'name' is required"),
            ({"name": 3, "task": "t"}, "'name' is required"),
            ({"name": "n"}, "'task' is required"),
            (
                {"name": "n", "task": "t", "trigger_type": "webhook"},
                "Only 'timer' schedules can be created here.",
            ),
            (
                {"name": "n", "task": "t", "trigger_config": [1]},
                "'trigger_config' must be an object",
            ),
            (
                {"name": "n", "task": "t", "trigger_config": {"cron": 5}},
                "'trigger_config.cron' must be a string",
            ),
            (
                {"name": "n", "task": "t", "trigger_config": {"cron": "nope"}},
                "Invalid cron expression: nope",
            ),
            (
                {"name": "n", "task": "t", "trigger_config": {"cron": ""}},
                "Timer trigger needs 'cron' or 'interval_minutes' in trigger_config.",
            ),
            (
                {"name": "n", "task": "t", "trigger_config": {"interval_minutes": 0}},
                "'trigger_config.interval_minutes' must be > 0",
            ),
            (
                {"name": "n", "task": "t", "trigger_config": {"interval_minutes": "5"}},
                "'trigger_config.interval_minutes' must be > 0",
            ),
            ([1, 2], "Request body must be a JSON object"),
        ]
        for body, error in cases:
            refused(c, "POST", url, 400, error, json=body)
        refused(
            c,
            "POST",
            url,
            400,
            "Invalid JSON body",
            content="{nope",
            headers={"content-type": "application/json"},
        )
        assert c.get(url).json()["triggers"] == []


def test_create_trigger_slugs_starts_and_lists_in_both_shapes(env: Env, server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)["session_id"]
        url = f"/api/sessions/{sid}/triggers"
        body = {
            "name": "Daily digest!",
            "task": " send it ",
            "trigger_type": "timer",
            "trigger_config": {"cron": "0 9 * * *", "interval_minutes": 5, "timezone": "X"},
        }
        r = c.post(url, json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "trigger_id": "user-daily-digest",
            "name": "Daily digest!",
            "trigger_type": "timer",
            "trigger_config": {"cron": "0 9 * * *"},  # other keys dropped, as hive
        }
        again = c.post(url, json={**body, "trigger_config": {"interval_minutes": 1.5}})
        assert again.json()["trigger_id"] == "user-daily-digest-2"
        assert again.json()["trigger_config"] == {"interval_minutes": 1.5}
        odd = c.post(
            url,
            json={"name": "Ünïcode  täsk", "task": "t", "trigger_config": {"interval_minutes": 9}},
        )
        assert odd.json()["trigger_id"] == "user-ünïcode-täsk"
        rows = {t["trigger_id"]: t for t in c.get(url).json()["triggers"]}
        row = rows["user-daily-digest"]
        assert row["id"] == row["trigger_id"] and row["enabled"] is True and row["active"] is True
        assert row["task"] == "send it" and row["name"] == "Daily digest!"
        config = row["trigger_config"]
        assert config["cron"] == "0 9 * * *" and isinstance(config["next_fire_at"], int)
        assert config["next_fire_in"] > 0 and row["next_fire_at"] == config["next_fire_at"]
        assert row["next_due_at"].endswith("+00:00") and row["last_fired_at"] is None
        # the run route fires it (no colony: hive's 409), deactivate clears the timing
        c.post(f"{url}/user-daily-digest/deactivate")
        row = {t["trigger_id"]: t for t in c.get(url).json()["triggers"]}["user-daily-digest"]
        assert row["enabled"] is False and "next_fire_at" not in row["trigger_config"]
        # the log holds hive's trigger_activated, entry_node null, plus the task
        detail = c.get(f"/api/sessions/{sid}/events/history", params={"limit": 50}).json()
        activated = [e for e in detail["events"] if e["type"] == "trigger_activated"]
        assert activated[0]["data"]["entry_node"] is None
        assert activated[0]["data"]["task"] == "send it"
        assert "next_fire_at" in activated[0]["data"]["trigger_config"]


# -- colony_id, the canonical session, the fork -------------------------------------------


def test_colony_id_opens_the_canonical_session(env: Env, server: Server) -> None:
    with client(server) as c:
        first = new_session(c, colony_id="demo_colony", queen_name="queen_growth")
        sid = first["session_id"]
        assert first["colony_id"] == "demo_colony" and first["has_worker"] is True
        assert first["queen_phase"] == "colony"  # 54fd8db's name for a 54fd8db client
        folder = env.root / "demo_colony"
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["queen_session_id"] == sid and meta["queen_name"] == "queen_growth"
        assert new_session(c, colony_id="demo_colony")["session_id"] == sid  # live: returned
        c.delete(f"/api/sessions/{sid}")
        resumed = new_session(c, colony_id="demo_colony", session_id="ignored_id")
        assert resumed["session_id"] == sid and resumed["colony_id"] == "demo_colony"
        # a new colony with a first prompt never lands in an existing one (hive dedups)
        fresh = new_session(c, colony_id="demo_colony", initial_prompt="build me a thing")
        assert fresh["colony_id"] == "demo_colony_2" and fresh["session_id"] != sid
        for bad in ("..", "a/b", "a\\b", "x" * 200):
            refused(c, "POST", "/api/sessions", 400, "Invalid colony_id", json={"colony_id": bad})
        assert not (env.root.parent / "a").exists()


def test_existing_colony_starts_only_enabled_triggers(env: Env, server: Server) -> None:
    on = {
        "id": "on",
        "name": "On",
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": 60},
        "task": "t",
    }
    off = {**on, "id": "off", "name": "Off", "enabled": False}
    make_colony(env.root, "with_triggers", triggers=[on, off])
    with client(server) as c:
        sid = new_session(c, colony_id="with_triggers")["session_id"]
        rows = {
            t["trigger_id"]: t for t in c.get(f"/api/sessions/{sid}/triggers").json()["triggers"]
        }
        assert rows["on"]["enabled"] is True and rows["off"]["enabled"] is False
        assert c.get(f"/api/sessions/{sid}").json()["queen_id"] == "queen_growth"  # metadata


def test_fork_locks_the_source_and_binds_a_new_session(env: Env, server: Server) -> None:
    with client(server) as c:
        dm = new_session(c)["session_id"]
        body = {"colony_id": "fresh_col", "source_session_id": dm, "initial_phase": "colony"}
        refused(
            c,
            "POST",
            "/api/sessions",
            400,
            "colony_id must be lowercase alphanumeric with underscores",
            json={**body, "colony_id": "Bad-Name"},
        )
        refused(
            c,
            "POST",
            "/api/sessions",
            404,
            "source_session_id 'nope' is not a live session",
            json={**body, "source_session_id": "nope"},
        )
        refused(
            c,
            "POST",
            "/api/sessions",
            400,
            "Invalid initial_phase 'nope'",
            json={**body, "initial_phase": "nope"},
        )
        forked = new_session(c, **body)
        assert forked["session_id"] != dm and forked["colony_id"] == "fresh_col"
        assert forked["queen_phase"] == "colony"
        source = c.get(f"/api/sessions/{dm}").json()
        assert source["colony_spawned"] is True and source["spawned_colony_id"] == "fresh_col"
        refused(
            c,
            "POST",
            "/api/sessions",
            409,
            "source session already spawned a colony — cannot fork again.",
            json={**body, "colony_id": "other_col"},
        )
        meta = json.loads((env.root / "fresh_col" / "metadata.json").read_text())
        assert meta["queen_session_id"] == forked["session_id"] and meta["source_session_id"] == dm
        # a second DM forking to the same name gets hive's de-duplicated id
        dm2 = new_session(c)["session_id"]
        assert new_session(c, **{**body, "source_session_id": dm2})["colony_id"] == "fresh_col_2"
        events = c.get(f"/api/sessions/{forked['session_id']}/events/history").json()["events"]
        assert events[0]["type"] == "session_created"
        assert events[0]["data"]["source_session_id"] == dm
        # GET /api/sessions/history lists DMs only, newest id first (hive 54fd8db wins)
        listed = [s["session_id"] for s in c.get("/api/sessions/history").json()["sessions"]]
        assert listed == sorted([dm, dm2], reverse=True)


def test_colony_session_lists(env: Env, server: Server) -> None:
    with client(server) as c:
        sid = new_session(c, colony_id="listed")["session_id"]
        rows = c.get("/api/colonies/listed/sessions").json()["sessions"]
        assert [r["session_id"] for r in rows] == [sid]
        assert rows[0]["has_messages"] is False and rows[0]["live"] is True
        assert c.get("/api/colonies/listed/active-session").json() == {"session": None}
        append(env, sid, hive_event("client_input_received", {"content": "hello"}))
        wait_until(
            lambda: c.get("/api/colonies/listed/sessions").json()["sessions"][0]["has_messages"]
        )
        active = c.get("/api/colonies/listed/active-session").json()["session"]
        assert active["session_id"] == sid and active["cold"] is True
        assert c.get("/api/colonies/unknown/sessions").json() == {"sessions": []}
        refused(c, "GET", "/api/colonies/a%5Cb/sessions", 400, "Invalid colony_id")
        refused(c, "GET", "/api/colonies/a%5Cb/active-session", 400, "Invalid colony_id")


# -- history cursors and seq ----------------------------------------------------------------


def test_history_cursor_pages_stitch_the_whole_session(env: Env, server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)["session_id"]
        append(env, sid, *[hive_event("client_output_delta", {"i": i}) for i in range(1200)])
        url = f"/api/sessions/{sid}/events/history"
        wait_until(lambda: c.get(url, params={"limit": 1}).json()["total"] >= 1200)
        page = c.get(url).json()
        total = page["total"]
        keys = ["events", "session_id", "total", "returned", "truncated", "limit"]
        assert list(page)[:9] == [*keys, "start_index", "start_offset", "has_more_older"]
        assert page["limit"] == 500 and page["returned"] == 500
        assert page["start_index"] == total - 499 and page["start_offset"] == total - 500
        seen = page["events"]
        while page["has_more_older"]:
            params = {
                "limit": 500,
                "before_offset": page["start_offset"],
                "before_index": page["start_index"],
            }
            page = c.get(url, params=params).json()
            assert page["total"] == -1 and page["truncated"] is False
            seen = page["events"] + seen
        assert page["start_offset"] == 0
        assert [e["seq"] for e in seen] == list(range(1, total + 1))
        assert [e["seq"] for e in seen] == [e["version"] for e in seen]
        assert c.get(url, params={"before_offset": "abc"}).json()["total"] == total  # tail
        empty = c.get(url, params={"before_offset": 0}).json()
        assert empty["events"] == [] and empty["has_more_older"] is False


# -- the per-session SSE opening --------------------------------------------------------------


async def test_session_sse_opens_with_snapshot_then_triggers(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT) as ac:
        sid = (await ac.post("/api/sessions", json={})).json()["session_id"]
        body = {"name": "Tick", "task": "t", "trigger_config": {"interval_minutes": 60}}
        assert (await ac.post(f"/api/sessions/{sid}/triggers", json=body)).status_code == 200
        async with ac.stream("GET", f"/api/sessions/{sid}/events") as r:
            messages = await asyncio.wait_for(read_sse(r, 3), WAIT)
    first = json.loads(messages[0].data or "")
    assert first["type"] == "session_snapshot" and first["seq"] == 0 and messages[0].id is None
    assert first["node_id"] == "queen" and "snapshot_seq" in first["data"]
    replayed = json.loads(messages[1].data or "")
    assert replayed["type"] == "trigger_activated" and replayed["seq"] == replayed["version"]
    last = json.loads(messages[2].data or "")
    assert last["type"] == "trigger_activated" and messages[2].id is None  # the trigger set
    assert (
        last["data"]["trigger_id"] == "user-tick"
        and "next_fire_at" in last["data"]["trigger_config"]
    )


# -- resolve_missed ----------------------------------------------------------------------------


def test_resolve_missed_records_each_decision(env: Env, server: Server) -> None:
    timer = {
        "id": "tick",
        "name": "Tick",
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": 60},
        "task": "t",
    }
    make_colony(env.root, "missed", triggers=[timer])
    with client(server) as c:
        dm = new_session(c)["session_id"]
        refused(
            c,
            "POST",
            f"/api/sessions/{dm}/colony/resolve_missed",
            409,
            "Colony not loaded",
            json={},
        )
        refused(
            c,
            "POST",
            "/api/sessions/nope/colony/resolve_missed",
            404,
            "Session 'nope' not found",
            json={},
        )
        sid = new_session(c, colony_id="missed")["session_id"]
        url = f"/api/sessions/{sid}/colony/resolve_missed"
        refused(c, "POST", url, 400, "invalid JSON body", content="")
        refused(c, "POST", url, 400, "invalid JSON body", content="{x")
        refused(
            c,
            "POST",
            url,
            400,
            "decisions must be an object {trigger_id: decision}",
            json={"decisions": [1]},
        )
        r = c.post(
            url, json={"decisions": {"tick": "fire_latest", "ghost": "skip", "tick2": "later"}}
        )
        assert r.status_code == 200
        assert r.json() == {
            "results": {
                "tick": "fired",
                "ghost": "unknown_trigger",
                "tick2": "invalid_decision:later",
            }
        }
        events = c.get(f"/api/sessions/{sid}/events/history").json()["events"]
        resolved = [e for e in events if e["type"] == "trigger_missed_resolved"]
        assert resolved[0]["data"]["decision"] == "fire_latest"
        fired = [e for e in events if e["type"] == "trigger_fired"]
        assert fired[-1]["data"]["catch_up"] is True
        before = head(c)
        assert c.post(url, json={"decisions": {"ghost": "skip"}}).status_code == 200
        assert head(c) == before  # nothing valid to record


# -- runtime routes ----------------------------------------------------------------------------


def test_runtime_routes_answer_honestly(server: Server) -> None:
    with client(server) as c:
        sid = new_session(c)["session_id"]
        before = head(c)
        r = c.post(f"/api/sessions/{sid}/dismiss-colony-pivot")
        assert r.status_code == 200 and r.json() == {
            "dismissed": False,
            "reason": "no_pending_pivot",
        }
        for method, path, status in [
            ("POST", "report-bundle", 501),
            ("POST", "upload-attachment", 501),
            ("GET", "live_tools", 501),
            ("GET", "attachment/photo.png", 404),
        ]:
            r = c.request(method, f"/api/sessions/{sid}/{path}")
            assert r.status_code == status and isinstance(r.json()["error"], str), (path, r.text)
            r = c.request(method, f"/api/sessions/nope/{path}")
            assert r.status_code == 404, path
        assert head(c) == before
        assert c.post("/api/sessions/nope/dismiss-colony-pivot").status_code == 404


def test_load_colony_by_colony_id(env: Env, server: Server) -> None:
    make_colony(env.root, "loadme")
    with client(server) as c:
        sid = new_session(c)["session_id"]
        url = f"/api/sessions/{sid}/colony"
        refused(c, "POST", url, 400, "colony_id is required", json={})
        refused(c, "POST", url, 404, "Colony not found: ghost", json={"colony_id": "ghost"})
        refused(c, "POST", url, 400, "Invalid colony_id", json={"colony_id": "../etc"})
        r = c.post(url, json={"colony_id": "loadme"})
        assert r.status_code == 200 and r.json()["colony_id"] == "loadme"
        assert r.json()["agent_path"] == str(env.root / "loadme")
