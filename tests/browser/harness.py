"""One origin for a hive frontend build: its `dist/` plus `/api/*` proxied to hivelog.

A small Starlette app under uvicorn on 127.0.0.1, run in a thread of the test and
stopped through its `uvicorn.Server` handle. It serves the build's files with an
`index.html` fallback (the 3c390c9e build uses path routes), streams `/api/*` to a
real `hivelog serve` subprocess so Server-Sent Events pass through, and answers the
non-session routes the app waits on (LLM config, queen profiles) itself, because
they are not hivelog's to serve (hive-frontend README). Upstream connections are
never pooled: a keep-alive connection uvicorn already closed would turn the next
request into an error the app shows as "Reconnecting…".
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.server import free_port

QUEENS = ("queen_technology", "queen_growth", "queen_operations")
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "content-length", "proxy-authorization", "proxy-connection"}
)  # fmt: skip

LLM_CONFIG = {
    "provider": "anthropic",
    "model": "claude-sonnet-4",
    "has_api_key": True,
    "max_tokens": 8192,
    "max_context_tokens": 200000,
    "connected_providers": ["anthropic"],
    "active_subscription": None,
    "detected_subscriptions": [],
    "subscriptions": [],
    "api_base": None,
    "api_key_env_var": None,
}
MODELS = {
    "models": {
        "anthropic": [
            {
                "id": "claude-sonnet-4",
                "label": "Claude Sonnet 4",
                "recommended": True,
                "max_tokens": 8192,
                "max_context_tokens": 200000,
            }
        ]
    }
}
PROFILE = {"displayName": "Test User", "about": "", "theme": "light"}


def queen_profile(queen_id: str) -> dict[str, Any]:
    name = queen_id.removeprefix("queen_").replace("_", " ").title()
    return {"id": queen_id, "name": name, "title": f"Head of {name}", "summary": ""}


class Proxy:
    """Forwards one request to hivelog and streams the answer back (SSE included)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    async def forward(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Response:
        url = self.upstream + path + (f"?{query}" if query else "")
        last: Exception | None = None
        for _attempt in range(2):  # retry once: the README's second remedy for dropped sockets
            # A fresh client per request: no upstream connection is ever reused.
            client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
            try:
                request = client.build_request(method, url, headers=headers, content=body)
                upstream = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                await client.aclose()
                last = exc
                # Retry what cannot have reached hivelog, or what is safe to repeat.
                if isinstance(exc, httpx.ConnectError) or method in ("GET", "HEAD"):
                    continue
                break
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS
            }
            return StreamingResponse(
                _relay(upstream, client),
                status_code=upstream.status_code,
                headers=out_headers,
                background=BackgroundTask(_close, upstream, client),
            )
        return JSONResponse({"error": f"harness: upstream unreachable: {last}"}, status_code=502)

    async def post_json(self, path: str, body: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30.0) as client:
            return await client.post(self.upstream + path, json=body)

    async def get_json(self, path: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30.0) as client:
            answer = await client.get(self.upstream + path)
        data = answer.json() if answer.status_code == 200 else {}
        return data if isinstance(data, dict) else {}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _relay(upstream: httpx.Response, client: httpx.AsyncClient) -> AsyncIterator[bytes]:
    """Raw bytes as they come (SSE frames pass at once); closed also when the browser
    goes away mid-stream, which cancels this generator."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await _close(upstream, client)


async def _close(upstream: httpx.Response, client: httpx.AsyncClient) -> None:
    await upstream.aclose()
    await client.aclose()


def make_app(dist: Path, upstream: str) -> Starlette:
    """The harness app for one build folder and one hivelog base URL."""
    proxy = Proxy(upstream)
    index = dist / "index.html"
    root = dist.resolve()

    async def config_llm(request: Request) -> Response:
        return JSONResponse(LLM_CONFIG)

    async def config_models(request: Request) -> Response:
        return JSONResponse(MODELS)

    async def config_profile(request: Request) -> Response:
        return JSONResponse(PROFILE)

    async def queen_profiles(request: Request) -> Response:
        return JSONResponse({"queens": [queen_profile(q) for q in QUEENS]})

    async def one_queen_profile(request: Request) -> Response:
        return JSONResponse(queen_profile(request.path_params["queen"]))

    async def queen_session(request: Request) -> Response:
        """hive's queen session routes, answered by hivelog's POST /api/sessions:
        `select {session_id}` resumes that session, `new` makes a fresh one, and
        plain `session` (get-or-create) takes the queen's newest live session."""
        queen = request.path_params["queen"]
        wanted = await _json_object(request)
        chosen = wanted.get("session_id")
        body: dict[str, Any] = {"queen_name": queen}
        if isinstance(chosen, str) and chosen:
            body["queen_resume_from"] = chosen
        elif not request.url.path.endswith("/new"):
            live = await proxy.get_json("/api/sessions")
            mine = [s for s in live.get("sessions", []) if s.get("queen_id") == queen]
            if mine:
                body["queen_resume_from"] = max(mine, key=lambda s: s["session_id"])["session_id"]
        answer = await proxy.post_json("/api/sessions", body)
        if answer.status_code >= 400:
            return Response(answer.content, answer.status_code, media_type="application/json")
        live_session = answer.json()
        return JSONResponse({**live_session, "queen_id": queen, "status": "live"})

    async def api(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        return await proxy.forward(
            request.method,
            request.url.path,
            request.url.query,
            headers,
            await request.body(),
        )

    async def static(request: Request) -> Response:
        rel = request.path_params.get("path", "")
        candidate = (root / rel).resolve()
        if rel and candidate.is_relative_to(root) and candidate.is_file():
            return FileResponse(candidate)
        if rel.startswith("assets/"):
            return Response("not found", status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-store"})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/api/config/llm", config_llm, methods=["GET"]),
            Route("/api/config/models", config_models, methods=["GET"]),
            Route("/api/config/profile", config_profile, methods=["GET"]),
            Route("/api/queen/profiles", queen_profiles, methods=["GET"]),
            Route("/api/queen/{queen}/profile", one_queen_profile, methods=["GET"]),
            Route("/api/queen/{queen}/session/select", queen_session, methods=["POST"]),
            Route("/api/queen/{queen}/session/new", queen_session, methods=["POST"]),
            Route("/api/queen/{queen}/session", queen_session, methods=["POST"]),
            Route("/api/{rest:path}", api, methods=methods),
            Route("/{path:path}", static, methods=["GET", "HEAD"]),
        ]
    )


class Harness:
    """The harness app under uvicorn in a daemon thread; `stop()` ends it by its handle."""

    def __init__(self, dist: Path, upstream: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            make_app(dist, upstream),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="harness", daemon=True)

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("harness did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # open SSE streams: force their tasks down
            self.server.force_exit = True
            self.thread.join(timeout=10)


_SID = re.compile(r"session_[A-Za-z0-9_]+")


def template(path: str, known: dict[str, str] | None = None) -> str:
    """A concrete /api path as a route template (ids replaced by names)."""
    path = path.split("?", 1)[0]
    for value, name in (known or {}).items():
        path = path.replace(f"/{value}", f"/{{{name}}}")
    path = _SID.sub("{sid}", path)
    path = re.sub(
        r"^/api/sessions/(?!live$|history$|history/)([^/{]+)", "/api/sessions/{sid}", path
    )
    path = re.sub(r"/triggers/[^/{]+", "/triggers/{tid}", path)
    path = re.sub(r"^/api/queen/(?!profiles$)[^/{]+", "/api/queen/{q}", path)
    path = re.sub(r"^/api/colonies/[^/{]+", "/api/colonies/{c}", path)
    path = re.sub(r"^/api/colony/[^/{]+", "/api/colony/{c}", path)
    path = re.sub(r"^/api/webhooks/.+", "/api/webhooks/{path}", path)
    return path
