"""The OpenAPI document says which operations need the token, as the server does
(review of the console, metrics and health area).

The document defined the `hiveToken` scheme but named it in no security requirement,
so a client generated from it never sent `X-Hive-Token` and met 401 on every /api
call of a server with a token. Now the document names it (beside `{}`: a server
without a token needs none), and lifts it on exactly the operations the server lets
through without it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import msgspec

from api.app import create_app
from api.core.settings import Settings
from api.http import shapes
from api.http.openapi import build_document
from eventstore import StoreUnavailable
from tests.support.server import running_server, serve_in_process

TOKEN = "doc-token"


def needs_token(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    """Whether the token is named among the operation's security requirements
    (OpenAPI: the operation's `security` overrides the document's). The document also
    offers `{}`, no requirement, since a server started without a token needs none."""
    requirements = operation.get("security", document.get("security", []))
    return any("hiveToken" in requirement for requirement in requirements)


def test_documented_token_requirement_matches_the_server(tmp_path: Path) -> None:
    document = build_document(create_app(Settings(db_url="sqlite:///unused.db")).routes)
    assert document["components"]["securitySchemes"]["hiveToken"]["name"] == "X-Hive-Token"
    db = f"sqlite:///{tmp_path / 'doc.db'}"
    server_cm = running_server(db, tmp_path, ["--token", TOKEN])
    with server_cm as server, httpx.Client(base_url=server.base_url, timeout=30) as c:
        checked = 0
        for path, operations in document["paths"].items():
            concrete = re.sub(r"{\w+}", "x", path)
            for method, operation in operations.items():
                r = c.request(method.upper(), concrete)  # no token
                refused = r.status_code == 401 and r.json() == {"error": "unauthorized"}
                assert refused == needs_token(document, operation), (method, path, r)
                checked += 1
        assert checked == sum(len(ops) for ops in document["paths"].values()) > 40
        # and the public ones are the three the README names
        public = sorted(
            path
            for path, ops in document["paths"].items()
            if not any(needs_token(document, op) for op in ops.values())
        )
        assert public == ["/api/health", "/api/webhooks/{path}", "/openapi.json"]


async def test_a_refused_store_answers_a_documented_503(tmp_path: Path) -> None:
    """Any operation that touches the store answers 503 when the store refuses (disk
    full, database unreachable); the document listed 503 on the webhooks only, so a
    generated client met an undocumented status. A real SQLite app whose appends are
    swapped for refused ones."""
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'full.db'}", node_id="full"))
    document = build_document(app.routes)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "503" in operation["responses"], (method, path)
    async with serve_in_process(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        store = app.state.parts.store

        async def refused(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("injected: database or disk is full")

        store.append = refused
        r = await c.post("/api/sessions", json={})
    assert r.status_code == 503 and r.headers["retry-after"].isdigit()
    documented = document["paths"]["/api/sessions"]["post"]["responses"]["503"]
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    msgspec.convert(r.json(), shapes.Error)


async def test_the_parked_limit_is_documented_with_the_bounds_the_route_keeps(
    tmp_path: Path,
) -> None:
    """`GET …/parked?limit=` was documented as any integer; the route takes 1-1000."""
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'h.db'}"))
    document = build_document(app.routes)
    (param,) = [
        p
        for p in document["paths"]["/api/subscriptions/{group}/parked"]["get"]["parameters"]
        if p["name"] == "limit"
    ]
    low, high = param["schema"]["minimum"], param["schema"]["maximum"]
    async with serve_in_process(app) as base, httpx.AsyncClient(base_url=base) as c:
        made = await c.put("/api/subscriptions/g", json={})
        assert made.status_code == 201, made.text
        for limit, status in ((low - 1, 400), (low, 200), (high, 200), (high + 1, 400)):
            r = await c.get("/api/subscriptions/g/parked", params={"limit": limit})
            assert r.status_code == status, (limit, r.text)
