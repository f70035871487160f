"""GET /openapi.json is generated from the app's routes and describes every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from starlette.routing import Route

from api.app import create_app
from api.core.settings import Settings
from api.http.contract import doc_of
from api.http.openapi import build_document
from tests.support.server import running_server

CONVERTOR = re.compile(r"{(\w+):\w+}")  # Starlette's {path:path} is OpenAPI's {path}
APP = create_app(Settings(db_url="sqlite:///unused.db", agents_roots=()))
DOCUMENT = build_document(APP.routes)


def app_operations(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'x.db'}", agents_roots=(tmp_path,)))
    ops: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        if not route.include_in_schema:
            assert route.path.startswith("/console"), route.path  # only the console's pages
            continue
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET
                ops.add((method.lower(), CONVERTOR.sub(r"{\1}", route.path)))
    return ops


def test_every_app_route_is_documented(tmp_path: Path) -> None:
    documented = {(m, p) for p, item in DOCUMENT["paths"].items() for m in item}
    missing = app_operations(tmp_path) - documented
    assert not missing, f"routes missing from the document: {sorted(missing)}"


def test_every_route_handler_is_documented() -> None:
    """The generator falls back to a docstring for a bare handler; annotate it instead."""
    bare = [
        r.path
        for r in APP.routes
        if isinstance(r, Route) and r.include_in_schema and doc_of(r.endpoint) is None
    ]
    assert not bare, f"route handlers without @documented(...): {bare}"


def test_schemas_come_from_the_models() -> None:
    """Request bodies are the Structs that validate them; responses the shapes."""
    from api.http.agents import AgentMetadata
    from api.http.sessions import CreateSession, LoadColony
    from api.http.triggers import UpdateTrigger

    components = DOCUMENT["components"]["schemas"]
    for model in (CreateSession, LoadColony, UpdateTrigger, AgentMetadata):
        schema = components[model.__name__]
        assert schema.get("additionalProperties") is not False  # unknown keys are ignored
        fields = set(model.__struct_fields__)
        assert set(schema["properties"]) == fields, model
    post = DOCUMENT["paths"]["/api/sessions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateSession"
    }
    assert "201" in post["responses"]
    history = DOCUMENT["paths"]["/api/sessions/{session_id}/events/history"]["get"]
    assert {p["name"] for p in history["parameters"]} == {
        "session_id",
        "limit",
        "before",
        "after",
        "types",
    }


def test_every_operation_documents_errors_and_path_parameters() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            assert "4XX" in operation["responses"], (method, path)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == in_path, (method, path)


def test_served_document(db_url: str, tmp_path: Path) -> None:
    with running_server(db_url, tmp_path, env={"HIVELOG_AGENTS_ROOTS": str(tmp_path)}) as srv:
        r = httpx.get(f"{srv.base_url}/openapi.json")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json()["openapi"].startswith("3.")
        assert r.json() == DOCUMENT
