"""The API's outer layer, as pure ASGI middleware (no BaseHTTPMiddleware: it breaks
streaming and contextvars, Starlette #1678/#919).

Outermost first: `/api/*` responses get `Cache-Control: no-store`; unhandled
errors become hive's 500 body (a client that went away is only a debug line); the
optional `X-Hive-Token` check (401); the body-read timeout (408: uvicorn has none,
so a `Content-Length: 1000` with 2 bytes sent would hold the request forever); the
body-size cap (413), enforced while the body streams in, so an oversized upload is
never held in memory. Settings are given once, when the composition root builds the stack.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import orjson
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.settings import BODY_TIMEOUT_SECONDS, MAX_BODY_BYTES, Settings

log = logging.getLogger("hivelog.http")

# Reachable without the token: liveness probes, the API description, and webhook
# receivers (external senders cannot know the token; webhooks carry their own secret).
# The console's static files are public so the page can load and ask for the token;
# every API call it makes carries it.
PUBLIC_PATHS = frozenset({"/api/health", "/openapi.json", "/console"})
PUBLIC_PREFIXES = ("/api/webhooks/", "/console/")  # README: nothing else is open


async def send_json(
    send: Send, status: int, body: dict[str, object], *, close: bool = False
) -> None:
    """A JSON response; `close` adds `Connection: close` (the server then drops the
    connection, which matters when the request body was not read to its end)."""
    raw = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


class ErrorMiddleware:
    """An exception no route handled: logged with its traceback, and hive's
    500 `{"error":"Internal server error"}` if the response has not started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # the client went away mid-request: nobody to answer, nothing went wrong here
            log.debug("client disconnected during %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, {"error": "Internal server error"})


class CacheControlMiddleware:
    """hive's `Cache-Control: no-store` on every `/api/*` response that sets none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)


class TokenMiddleware:
    """hive's desktop token: with `settings.token` set, a missing or wrong
    `X-Hive-Token` is 401 `{"error":"unauthorized"}` (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self.token
        if scope["type"] == "http" and token and not _public(scope["path"]):
            given = dict(scope["headers"]).get(b"x-hive-token", b"")
            if not hmac.compare_digest(given, token.encode()):
                await send_json(send, 401, {"error": "unauthorized"})
                return
        await self.app(scope, receive, send)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BodyLimitMiddleware:
    """413 for a body over `settings.max_body_bytes`: at once from Content-Length,
    else as soon as the streamed chunks pass the limit (the app then sees a
    disconnect, and whatever it tries to send is dropped)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, {"error": f"Request body larger than {limit} bytes"})
            return
        received = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await send_json(
                            send, 413, {"error": f"Request body larger than {limit} bytes"}
                        )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class BodyTimeoutMiddleware:
    """408 (and the connection closed) when the request body does not arrive in full
    within `timeout` seconds of the app asking for it. Only body reads are timed: once
    the body is complete, waiting on `receive` (an SSE stream watching for the
    disconnect) is left alone."""

    def __init__(self, app: ASGIApp, timeout: float = BODY_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timeout = self.timeout
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        body_done = False
        timed_out = False
        started = False

        async def timed_receive() -> Message:
            nonlocal deadline, body_done, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            if deadline is None:
                deadline = loop.time() + timeout  # the whole body, not each chunk
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                log.debug("request body of %s %s timed out", scope.get("method"), scope["path"])
                if not started:
                    message_text = f"Request body not received within {timeout:g} s"
                    await send_json(send, 408, {"error": message_text}, close=True)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise


def middleware_for(settings: Settings) -> list[Middleware]:
    return [
        Middleware(CacheControlMiddleware),  # outermost, so 500/401/413 carry it too
        Middleware(ErrorMiddleware),
        Middleware(TokenMiddleware, token=settings.token),
        Middleware(BodyTimeoutMiddleware, timeout=settings.body_timeout),
        Middleware(BodyLimitMiddleware, limit=settings.max_body_bytes),
    ]
