"""`hivelog serve`: the Starlette app under uvicorn, on loopback by default.

SIGTERM (and Ctrl-C) stop it gracefully with exit code 0: uvicorn re-raises a
caught signal once it has shut down, to run the handler that was there before;
ours says "stopped as asked". hivelog's own log lines (logger `hivelog`) go to
uvicorn's console handler at the chosen level.
"""

from __future__ import annotations

import argparse
import copy
import signal
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from api.app import create_app
from api.core.settings import Settings
from tools.config import db_url


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, plus the `hivelog` logger on its console handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["hivelog"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def _stopped_as_asked(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        db_url=db_url(args.db),
        agents_roots=args.agents_root,
        token=args.token,
        node_id=args.node_id,
    )
    app = create_app(settings, address=f"http://{args.host}:{args.port}")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped_as_asked)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=log_config(args.log_level),
        lifespan="on",
    )
    return 0
