"""`hivelog serve`: the Starlette app under uvicorn, on loopback by default."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from api.app import create_app
from api.core.settings import Settings
from eventstore import EventStoreError
from eventstore.preflight import verify_store
from tools.config import db_url
from tools.console import EXIT_USAGE, error
from tools.startup_check import recent_chain_faults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    parser.add_argument(
        "--agents-root",
        action="append",
        default=None,
        metavar="DIR",
        help="allowed root for agent folders (repeatable; env HIVELOG_AGENTS_ROOTS; "
        "default HIVE_HOME/colonies and HIVE_HOME/agents)",
    )
    parser.add_argument(
        "--token", default=None, help="require X-Hive-Token on /api/* (env HIVELOG_TOKEN)"
    )
    parser.add_argument(
        "--node-id", default=None, help="stable node identity (env HIVELOG_NODE_ID)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


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
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    return 0
