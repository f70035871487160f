"""`hivelog serve`: the Starlette app under uvicorn, on loopback by default.

SIGTERM (and Ctrl-C) stop it gracefully with exit code 0 (see `Server`). hivelog's
own log lines (logger `hivelog`) go to uvicorn's console handler at the chosen level.

Slow or silent clients cannot hold connections forever (issue 12): uvicorn closes
idle keep-alive connections after `--keep-alive-timeout` and answers 503 beyond
`--max-connections` (`limit_concurrency`); `tools/http_protocols.py` adds what
uvicorn lacks, a request-head timeout (`--header-timeout`) and, on httptools, a
16 KiB cap on a request head (h11 has its own); the app's `BodyTimeoutMiddleware`
adds the body timeout (408).

The stack (issue 15): uvloop for the event loop and httptools for the protocol where
installed (`uvicorn[standard]` brings both on CPython off Windows), else asyncio and
h11 (`--http h11` asks for h11). `STACK` says what runs by default; `hivelog bench`
runs its bare baselines on the same.
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

import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE

from api.app import create_app
from api.core.nodes import NodeIdInUse, claim_node_id
from api.core.settings import Settings
from eventstore import EventStoreError
from eventstore.preflight import verify_store
from tools.config import db_url
from tools.console import EXIT_USAGE, error
from tools.http_protocols import DEFAULT_HTTP, MAX_HEAD_BYTES, protocol_for
from tools.startup_check import recent_chain_faults

KEEP_ALIVE_SECONDS = 5.0
MAX_CONNECTIONS = 4096
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
STACK = f"uvicorn, {LOOP} loop, {DEFAULT_HTTP}"


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


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, plus the `hivelog` logger on its console handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["hivelog"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def protocol_with_head_timeout(seconds: float, kind: str = DEFAULT_HTTP) -> type[asyncio.Protocol]:
    """`serve`'s protocol (httptools where installed, else h11) with its head guards."""
    return protocol_for(kind, seconds)


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
    try:  # a second live process with this node id ends here, with the reason
        asyncio.run(claim_node_id(settings.db_url, settings.node_id, settings.node_ttl))
    except (NodeIdInUse, EventStoreError) as exc:
        error(str(exc))
        return EXIT_USAGE
    try:
        protocol = protocol_with_head_timeout(args.header_timeout, args.http or DEFAULT_HTTP)
    except ValueError as exc:
        error(str(exc))
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
        http=protocol,
        timeout_keep_alive=max(1, round(args.keep_alive_timeout)),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,  # h11's cap (httptools': the protocol's)
        limit_concurrency=args.max_connections,
        timeout_graceful_shutdown=max(1, round(GRACEFUL_SECONDS)),
    )
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE
