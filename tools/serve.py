"""`hivelog serve`: the Starlette app under uvicorn, on loopback by default."""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from api.settings import Settings
from tools.config import db_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(db_url=db_url(args.db))
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    return 0
