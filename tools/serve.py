"""`hivelog serve`: the Starlette app under uvicorn, on loopback by default."""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from api.core.settings import Settings
from tools.config import db_url


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        db_url=db_url(args.db),
        agents_roots=args.agents_root,
        token=args.token,
        node_id=args.node_id,
    )
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    return 0
