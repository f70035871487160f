"""The outer layer over real HTTP: token, no-store, body cap, hive's 500 body."""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api.core.settings import Settings
from api.http import middleware as mw
from tests.support.server import running_server, serve_in_process

LIMIT = 1024


async def boom(request: Request) -> Response:
    raise RuntimeError("kaput")


async def echo(request: Request) -> Response:
    body = await request.body()
    return PlainTextResponse(str(len(body)))


def make_app(token: str | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/api/boom", boom),
            Route("/api/echo", echo, methods=["POST"]),
            Route("/api/health", echo, methods=["GET"]),
            Route("/other", echo, methods=["GET"]),
        ],
        middleware=mw.middleware_for(
            Settings(db_url="sqlite:///unused", token=token, max_body_bytes=LIMIT)
        ),
    )
    return app


async def test_unhandled_error_is_hives_500_json() -> None:
    async with serve_in_process(make_app()) as url, httpx.AsyncClient() as c:
        r = await c.get(f"{url}/api/boom")
        assert r.status_code == 500
        assert r.json() == {"error": "Internal server error"}
        assert r.headers["cache-control"] == "no-store"


async def test_no_store_only_on_api_paths() -> None:
    async with serve_in_process(make_app()) as url, httpx.AsyncClient() as c:
        assert (await c.get(f"{url}/api/health")).headers["cache-control"] == "no-store"
        assert "cache-control" not in (await c.get(f"{url}/other")).headers


async def test_body_cap_by_content_length_and_by_stream() -> None:
    async with serve_in_process(make_app()) as url, httpx.AsyncClient() as c:
        ok = await c.post(f"{url}/api/echo", content=b"x" * LIMIT)
        assert ok.status_code == 200 and ok.text == str(LIMIT)
        r = await c.post(f"{url}/api/echo", content=b"x" * (LIMIT + 1))
        assert r.status_code == 413 and "larger than" in r.json()["error"]

        async def chunks() -> AsyncIterator[bytes]:
            # Chunked: no Content-Length, so the cap applies while it streams in.
            for _ in range(64):
                yield b"y" * 512

        r = await c.post(f"{url}/api/echo", content=chunks())
        assert r.status_code == 413
        assert r.json()["error"].startswith("Request body larger than")


async def test_token_required_when_set() -> None:
    async with serve_in_process(make_app(token="s3cret")) as url, httpx.AsyncClient() as c:
        r = await c.get(f"{url}/api/boom")
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
        assert r.headers["cache-control"] == "no-store"
        r = await c.get(f"{url}/api/boom", headers={"X-Hive-Token": "wrong"})
        assert r.status_code == 401
        r = await c.get(f"{url}/api/boom", headers={"X-Hive-Token": "s3cret"})
        assert r.status_code == 500  # through to the route
        assert (await c.get(f"{url}/api/health")).status_code == 200
        assert (await c.get(f"{url}/other")).status_code == 401


def test_token_flag_on_real_server(db_url: str, tmp_path: Path) -> None:
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp_path)}
    with running_server(db_url, tmp_path, ["--token", "abc"], env=env) as srv:
        url = f"{srv.base_url}/api/sessions/x-1/events/history"
        r = httpx.get(url)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
        assert r.headers["cache-control"] == "no-store"
        assert httpx.get(url, headers={"X-Hive-Token": "abc"}).status_code == 404
        assert httpx.get(f"{srv.base_url}/api/health").status_code == 200
        big = httpx.post(
            f"{srv.base_url}/api/sessions",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"X-Hive-Token": "abc", "content-type": "application/json"},
        )
        assert big.status_code == 413


def _raw_status(base_url: str, method: str, path: str, token: str | None = None) -> int:
    """One request with `path` sent byte for byte (httpx would normalize `..` and `//`)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request(method, path, headers={"X-Hive-Token": token} if token else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


PUBLIC = ["/api/health", "/openapi.json", "/console", "/console/", "/api/webhooks/none"]
GUARDED = [
    ("GET", "/metrics"),
    ("GET", "/api/sessions"),
    ("HEAD", "/api/sessions"),
    ("OPTIONS", "/api/sessions"),
    ("GET", "//api/sessions"),
    ("GET", "/api/sessions/"),
    ("GET", "/%61pi/sessions"),
    ("GET", "/api/health/../sessions"),
    ("GET", "/api/discover"),
    ("GET", "/webhooks/anything"),  # not a route, and not public (README: /api/webhooks/*)
]


def test_token_guards_every_path_but_the_public_ones(db_url: str, tmp_path: Path) -> None:
    """The README's public list is the whole list: a prefix that is no route (/webhooks/)
    is guarded like any other path, so a route added there later is not public by accident."""
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp_path)}
    with running_server(db_url, tmp_path, ["--token", "abc"], env=env) as srv:
        for path in PUBLIC:
            assert _raw_status(srv.base_url, "GET", path) != 401, path
        for method, path in GUARDED:
            assert _raw_status(srv.base_url, method, path) == 401, (method, path)
            assert _raw_status(srv.base_url, method, path, token="abd") == 401, (method, path)
        assert _raw_status(srv.base_url, "GET", "/api/sessions", token="abc") == 200
