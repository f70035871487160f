"""hive 54fd8db's liveness routes, all folded from the log (projections/activity.py).

- `GET /api/sessions/live` (RS:919-982): an SSE stream of `event: snapshot` frames,
  one row per live session sorted by id. The first frame goes at once; after that
  the rows are rebuilt every 2.5 s and a frame is sent when the signature changed
  or 30 s passed (the resend is the heartbeat: no `id:` lines, no comments).
  Must be routed before `/api/sessions/{session_id}`.
- `GET /api/sessions/{id}/snapshot` (RS:985-1000): the fold, with the stale rule.
- `POST /api/sessions/{id}/presence` (RX:1035-1047): a live session answers
  `{"ok": true, "resumed": false}`; nothing is read, recorded or changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.core.service import SessionService
from api.core.tasks import stop_tasks
from api.http.contract import documented
from api.http.responses import JSONResponse
from api.http.routing import path_session_id, sessions_of
from api.http.sse import Hub
from api.http.state import parts
from projections import views
from projections.commands import require_live
from projections.errors import NotFound

POLL_SECONDS = 2.5
RESEND_SECONDS = 30.0
NETWORK = {"degraded": False, "reason": None, "since_epoch": None, "last_event_epoch": None}


def live_payload(service: SessionService, now: float) -> dict[str, Any]:
    """`{"sessions": [Row], "network": {...}}`; a log service has no upstream LLM, so
    the network is never degraded."""
    states = sorted(
        (s for s in service.catalogue.sessions.values() if s.live), key=lambda s: s.session_id
    )
    return {"sessions": [views.live_row(s, now) for s in states], "network": dict(NETWORK)}


class SharedPayload:
    """One payload per projection position and second, shared by every client: each
    client polls every 2.5 s, and rows for thousands of sessions are not free."""

    def __init__(self, service: SessionService) -> None:
        self.service = service
        self.key: tuple[int, int] | None = None
        self.payload: dict[str, Any] = {}

    def get(self, now: float) -> dict[str, Any]:
        key = (self.service.position, int(now))
        if key != self.key:
            self.payload, self.key = live_payload(self.service, now), key
        return self.payload


_SHARED: dict[int, SharedPayload] = {}


def shared_payload(service: SessionService) -> SharedPayload:
    shared = _SHARED.get(id(service))
    if shared is None or shared.service is not service:
        shared = _SHARED[id(service)] = SharedPayload(service)
    return shared


def snapshot_frame(payload: dict[str, Any]) -> bytes:
    return b"event: snapshot\ndata: " + orjson.dumps(payload) + b"\n\n"


def _env_seconds(name: str, default: float) -> float:
    """Test hooks (HIVELOG_LIVE_POLL / HIVELOG_LIVE_RESEND); hive's values otherwise."""
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


class LiveStream(Response):
    """One client of /api/sessions/live; ends on disconnect or server shutdown."""

    media_type = "text/event-stream"

    def __init__(self, service: SessionService, hub: Hub) -> None:
        self.status_code = 200
        self.background = None
        self.service = service
        self.hub = hub
        self.poll = _env_seconds("HIVELOG_LIVE_POLL", POLL_SECONDS)
        self.resend = _env_seconds("HIVELOG_LIVE_RESEND", RESEND_SECONDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"connection", b"keep-alive"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        writer = asyncio.create_task(self._write(send))
        gone = asyncio.create_task(_wait_disconnect(receive))
        closing = asyncio.create_task(self.hub.closing.wait())
        waiters = {writer, gone, closing}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_tasks(waiters)  # re-cancels: a swallowed cancel cannot hang the response
        if closing.done() and not closing.cancelled():
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(1.0):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write(self, send: Send) -> None:
        signature: object = None
        sent_at = 0.0
        while True:
            payload = shared_payload(self.service).get(time.time())
            current = views.live_signature(payload["sessions"])
            now = time.monotonic()
            if current != signature or now - sent_at >= self.resend:
                body = snapshot_frame(payload)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                signature, sent_at = current, now
            await asyncio.sleep(self.poll)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@documented("Live sessions as SSE `event: snapshot` frames (hive 54fd8db)")
async def live_sessions(request: Request) -> Response:
    """Never a 404: an empty `sessions` list when nothing is live."""
    the_parts = parts(request)
    return LiveStream(the_parts.sessions, the_parts.hub)


@documented("What the queen is doing now, folded from the log", errors=(400, 404))
async def snapshot(request: Request) -> Response:
    session_id = path_session_id(request)
    state = sessions_of(request).get(session_id)
    if state is None or not state.live:
        raise NotFound("session not found")  # hive's lower-case text (RS:991)
    return JSONResponse(views.snapshot_dict(state, time.time()))


@documented("A client says it is watching; answers whether the session is live", errors=(404,))
async def presence(request: Request) -> Response:
    session_id = path_session_id(request)
    require_live(sessions_of(request).get(session_id), session_id)
    return JSONResponse({"ok": True, "resumed": False})


# `live_routes` must come before `/api/sessions/{session_id}` (api/app.py).
live_routes = [Route("/api/sessions/live", live_sessions, methods=["GET"])]
routes = [
    Route("/api/sessions/{session_id}/snapshot", snapshot, methods=["GET"]),
    Route("/api/sessions/{session_id}/presence", presence, methods=["POST"]),
]
