"""Unknown request-body keys are accepted and ignored, on every route with a body
(hive's own handlers ignore them; newer hive frontends send keys older ones lack).

Each body route gets a valid body plus an unknown key (any JSON type), on a real
server; the answer must be the documented success and match its schema, and the
unknown key must appear nowhere: not in the answer, not in the log, not on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.core.settings import Settings
from api.http.openapi import build_document
from tests.support.server import Server
from tests.support.sessions_support import TIMER, Env, make_colony, make_env

UNKNOWN = "hivelog_unknown_probe"
VALUES: list[Any] = [1, "text", None, True, [1, {"x": None}], {"nested": {"deep": [2.5]}}]
DOCUMENT = build_document(
    create_app(Settings(db_url="sqlite:///unused.db", agents_roots=())).routes
)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class World:
    """A server with a session that has a colony and a timer, and spare folders."""

    def __init__(self, env: Env, server: Server) -> None:
        self.env = env
        self.server = server
        self.client = httpx.Client(base_url=server.base_url, timeout=30)
        self.colony = make_colony(env.root, "with_timer", triggers=[TIMER])
        created = self.client.post("/api/sessions", json={"agent_path": str(self.colony)})
        assert created.status_code == 201, created.text
        self.session_id: str = created.json()["session_id"]
        self.spares = 0

    def spare_colony(self) -> Path:
        self.spares += 1
        return make_colony(self.env.root, f"spare_{self.spares}")

    def group(self) -> str:
        """A consumer group, created once."""
        r = self.client.put("/api/subscriptions/probe", json={})
        assert r.status_code in (200, 201), r.text
        return "probe"

    def bare_session(self) -> str:
        r = self.client.post("/api/sessions", json={})
        assert r.status_code == 201, r.text
        sid: str = r.json()["session_id"]
        return sid


# (method, documented path) -> recipe: (path parameters, a valid body) for one call
Recipe = Callable[[World], tuple[dict[str, str], dict[str, Any]]]
RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/api/sessions"): lambda w: ({}, {"agent_path": str(w.spare_colony())}),
    ("POST", "/api/sessions/{session_id}/colony"): lambda w: (
        {"session_id": w.bare_session()},
        {"agent_path": str(w.spare_colony())},
    ),
    ("PATCH", "/api/sessions/{session_id}/triggers/{trigger_id}"): lambda w: (
        {"session_id": w.session_id, "trigger_id": str(TIMER["id"])},
        {"task": "a new task"},
    ),
    ("PATCH", "/api/agents/metadata"): lambda w: ({}, {"agent_path": str(w.colony), "icon": "x"}),
    ("DELETE", "/api/agents"): lambda w: ({}, {"agent_path": str(w.spare_colony())}),
    ("POST", "/api/sessions/{session_id}/events"): lambda w: (
        {"session_id": w.session_id},
        {"events": [{"type": "llm_text_delta", "data": {"text": "hi"}}]},
    ),
    ("POST", "/api/sessions/{session_id}/triggers"): lambda w: (
        {"session_id": w.session_id},
        {"name": "Every nine", "task": "t", "trigger_config": {"interval_minutes": 9}},
    ),
    ("POST", "/api/sessions/{session_id}/colony/resolve_missed"): lambda w: (
        {"session_id": w.session_id},
        {"decisions": {TIMER["id"]: "skip"}},
    ),
    ("PUT", "/api/subscriptions/{group}"): lambda w: ({"group": "probe2"}, {"types": ["x"]}),
    ("POST", "/api/subscriptions/{group}/claim"): lambda w: (
        {"group": w.group()},
        {"worker": "w1", "max": 1},
    ),
    ("POST", "/api/subscriptions/{group}/ack"): lambda w: (
        {"group": w.group()},
        {"delivery_ids": ["1:1"]},
    ),
    ("POST", "/api/subscriptions/{group}/nack"): lambda w: (
        {"group": w.group()},
        {"delivery_ids": ["1:1"], "action": "retry", "reason": "probe"},
    ),
}


def body_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }


def test_every_body_route_has_a_recipe() -> None:
    assert body_operations() == set(RECIPES)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    env = make_env(tmp_path)
    server = env.start()
    try:
        w = World(env, server)
        yield w
        w.client.close()
    finally:
        server.stop()


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_unknown_fields_are_accepted_and_ignored(world: World, value: Any) -> None:
    for (method, path), recipe in RECIPES.items():
        path_parameters, body = recipe(world)
        found: Any = SCHEMA[path][method]  # a result wrapper in some schemathesis versions
        operation = found.ok() if hasattr(found, "ok") else found
        case = operation.Case(
            path_parameters=path_parameters,
            body={**body, UNKNOWN: value},
            media_type="application/json",
        )
        response = case.call_and_validate(base_url=world.server.base_url, checks=CHECKS, timeout=30)
        documented = DOCUMENT["paths"][path][method.lower()]["responses"]
        success = [code for code in documented if code.startswith("2")]
        assert str(response.status_code) in success, (method, path, response.text)
        assert UNKNOWN not in response.text, (method, path)

    # ignored, not stored: nowhere in the log, nor in the metadata file written
    sessions = world.client.get("/api/sessions/history").json()["sessions"]
    for session in sessions:
        r = world.client.get(f"/api/sessions/{session['session_id']}/events/history")
        assert r.status_code == 200 and r.json()["events"], r.text
        assert UNKNOWN not in r.text
    assert UNKNOWN not in (world.colony / "metadata.json").read_text()
