"""Review of the command path: commands whose events the store cannot record are a
400 that appends nothing (they were 500s), and a new trigger keeps PATCH's bound.
Against a real `hivelog serve` on a SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from projections.trigger_config import MAX_TRIGGER_BYTES
from tests.support.server import Server
from tests.support.sessions_support import client, make_env

JUST_UNDER_THE_BODY_LIMIT = 1024 * 1024 - 200  # the body fits; its event (with envelope) not


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = make_env(tmp_path_factory.mktemp("bounds"))
    served = env.start()
    try:
        yield served
    finally:
        served.stop()


def _head(c: httpx.Client) -> int:
    return int(c.get("/api/health").json()["head_position"])


def _post(c: httpx.Client, path: str, body: dict[str, object]) -> httpx.Response:
    raw = json.dumps(body).encode()
    assert len(raw) <= 1024 * 1024  # under the body limit: refused by the command, not 413
    return c.post(path, content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize("key", ["initial_prompt", "model"])
def test_a_session_too_large_to_record_is_400_and_appends_nothing(server: Server, key: str) -> None:
    with client(server) as c:
        before = _head(c)
        r = _post(c, "/api/sessions", {key: "p" * JUST_UNDER_THE_BODY_LIMIT})
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("Too large to record: event of ")
        assert _head(c) == before


def test_a_resume_too_large_to_record_is_400_and_leaves_the_session_cold(server: Server) -> None:
    with client(server) as c:
        sid = c.post("/api/sessions", json={}).json()["session_id"]
        assert c.delete(f"/api/sessions/{sid}").status_code == 200
        before = _head(c)
        r = _post(c, "/api/sessions", {"queen_resume_from": sid, "model": "m" * 1_048_300})
        assert r.status_code == 400, r.text
        assert _head(c) == before
        assert c.get(f"/api/sessions/{sid}").json()["cold"] is True


def test_a_new_trigger_keeps_the_patch_bound(server: Server) -> None:
    """A name and task of 600 KB was created (and one just under the body limit was a
    500); a PATCH of that trigger's config was then refused for good."""
    with client(server) as c:
        sid = c.post("/api/sessions", json={}).json()["session_id"]
        path = f"/api/sessions/{sid}/triggers"
        config = {"interval_minutes": 60}
        before = _head(c)
        for name, task in (("n" * 300_000, "t" * 300_000), ("n", "t" * JUST_UNDER_THE_BODY_LIMIT)):
            r = _post(c, path, {"name": name, "task": task, "trigger_config": config})
            assert r.status_code == 400, r.text
            assert f"at most {MAX_TRIGGER_BYTES} bytes" in r.json()["error"]
        assert _head(c) == before
        # hive's own checks still come first
        r = _post(c, path, {"name": " ", "task": "t" * 300_000, "trigger_config": config})
        assert (r.status_code, r.json()["error"]) == (400, "'name' is required")
        # at the bound: created, and its config can be changed
        r = _post(c, path, {"name": "big", "task": "t" * 200_000, "trigger_config": config})
        assert r.status_code == 200, r.text
        tid = r.json()["trigger_id"]
        edited = c.patch(f"{path}/{tid}", json={"trigger_config": {"interval_minutes": 30}})
        assert edited.status_code == 200, edited.text


def test_a_fork_too_large_to_record_is_400_and_leaves_the_source_unlocked(
    server: Server,
) -> None:
    """The fork's own session must be recordable before `colony_created` locks the
    source: a `model` near the body limit locked the DM for good (every retry a 409)."""
    with client(server) as c:
        dm = c.post("/api/sessions", json={}).json()["session_id"]
        before = _head(c)
        body = {"colony_id": "bigfork", "source_session_id": dm, "model": "m" * 1_048_300}
        r = _post(c, "/api/sessions", body)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("Too large to record: event of ")
        assert _head(c) == before
        assert c.get(f"/api/sessions/{dm}").json()["colony_spawned"] is False
        retry = c.post("/api/sessions", json={"colony_id": "bigfork", "source_session_id": dm})
        assert retry.status_code == 201, retry.text
