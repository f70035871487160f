"""`hivelog bench WHAT`: speed measured against a baseline run side by side.

Each target lives in its own module tools/bench_<what>.py exposing
`run(args) -> int`; its options are declared in `tools.cli_args`. `hivelog
bench all` runs every target and prints one table of issue 15's figures. Bench-only
packages (the `bench` extra) are imported when a target runs, and a missing
one is named with the command that installs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tools.cli_args import BENCH_TARGETS

# Packages only the benches need: `pip install -e '.[bench]'` brings them.
BENCH_ONLY = frozenset({"httpx"})
INSTALL_HINT = "pip install -e '.[bench]'  (from a checkout; or: pip install 'hivelog[bench]')"


ALL = "all"  # every target, one table: tools/bench_all.py


def run(args: argparse.Namespace) -> int:
    module_name = "tools.bench_all" if args.what == ALL else BENCH_TARGETS[args.what][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in BENCH_ONLY:
            raise
        print(
            f"hivelog bench {args.what} needs {missing!r}, which only the benches use.\n"
            f"Install the bench extra: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    result: int = module.run(args)
    return result
