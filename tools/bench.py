"""`hivelog bench WHAT`: speed measured against a baseline run side by side.

Each target lives in its own module tools/bench_<what>.py exposing
`add_arguments(parser)` and `run(args) -> int`; a missing one is reported.
"""

from __future__ import annotations

import argparse
import importlib
import sys

TARGETS = {
    "store": "tools.bench_store",
    "http": "tools.bench_http",
    "timers": "tools.bench_timers",
    "sessions": "tools.bench_sessions",
    "subscriptions": "tools.bench_subscriptions",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(TARGETS), help="what to measure")
    parser.add_argument("--quick", action="store_true", help="small sizes; under a minute")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    for module_name in TARGETS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        extra = getattr(module, "add_arguments", None)
        if extra is not None:
            extra(parser)


def run(args: argparse.Namespace) -> int:
    module_name = TARGETS[args.what]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"hivelog bench {args.what}: not available in this build yet", file=sys.stderr)
        return 2
    result: int = module.run(args)
    return result
