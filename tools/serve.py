"""`hivelog serve`: the Starlette app under uvicorn, on loopback by default.

SIGTERM (and Ctrl-C) stop it gracefully with exit code 0 (see `Server`). hivelog's
own log lines (logger `hivelog`) go to uvicorn's console handler at the chosen level.

Slow or silent clients cannot hold connections forever (issue 12): uvicorn closes
idle keep-alive connections after `--keep-alive-timeout`, caps a request head at
`h11_max_incomplete_event_size` bytes and answers 503 beyond `--max-connections`
(`limit_concurrency`). uvicorn has no request-head timeout (a connection that
sends nothing, or half a head, stays open), so `HeadTimeoutH11Protocol` adds one;
and no body timeout, which the app's `BodyTimeoutMiddleware` adds (408).

The stack (issue 15): uvloop for the event loop where installed (`uvicorn[standard]`
brings it on CPython off Windows), h11 for the protocol. httptools parses faster,
but uvicorn's head-size cap (`h11_max_incomplete_event_size`) exists only for h11,
and the head timeout above hooks h11's state; keeping h11 keeps both guarantees.
`STACK` says what runs; `hivelog bench` runs its bare baselines on the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.app import create_app
from api.core.settings import Settings
from eventstore import EventStoreError
from eventstore.preflight import verify_store
from tools.config import db_url
from tools.console import EXIT_USAGE, error
from tools.startup_check import recent_chain_faults

HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5.0
MAX_CONNECTIONS = 4096
MAX_HEAD_BYTES = 16 * 1024  # h11's default, stated: a request head larger than this is refused
# In-flight requests get this long to finish after SIGTERM, then are cancelled (a
# cancelled append was never acknowledged); the app's own stop follows.
GRACEFUL_SECONDS = 2.0


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


LOOP = _loop_name()
STACK = f"uvicorn, {LOOP} loop, h11"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop `hivelog serve` runs on, for code that serves in-process (the benches)."""
    if LOOP == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


class Server(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end it with exit code 0: a stop
    asked for is a clean exit (uvicorn re-raises the signal, so the process would
    report death by SIGTERM even after a complete graceful shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete
    within `head_timeout` seconds of the connection opening (or of the first byte of a
    later request on a kept-alive connection)."""

    head_timeout = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # a head still (partly) to come: keep its deadline
        else:
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, plus the `hivelog` logger on its console handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["hivelog"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def protocol_with_head_timeout(seconds: float) -> type[HeadTimeoutH11Protocol]:
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": seconds})


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        db_url=db_url(args.db),
        agents_roots=args.agents_root,
        token=args.token,
        node_id=args.node_id,
    )
    try:  # read-only: a foreign, newer or damaged database is refused untouched
        asyncio.run(verify_store(settings.db_url))
        broken = asyncio.run(recent_chain_faults(settings.db_url))
    except EventStoreError as exc:
        error(str(exc))
        return EXIT_USAGE
    if broken:
        error(
            "the hash chain is broken among the newest events (edited behind the store): "
            + "; ".join(broken[:5])
            + ". Not serving; run `hivelog audit` for the full report, restore from a backup"
        )
        return EXIT_USAGE
    settings = dataclasses.replace(settings, body_timeout=args.body_timeout)
    app = create_app(settings, address=f"http://{args.host}:{args.port}")
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=log_config(args.log_level),
        lifespan="on",
        loop=LOOP,
        http=protocol_with_head_timeout(args.header_timeout),
        timeout_keep_alive=max(1, round(args.keep_alive_timeout)),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        limit_concurrency=args.max_connections,
        timeout_graceful_shutdown=max(1, round(GRACEFUL_SECONDS)),
    )
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE
