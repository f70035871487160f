"""The `hivelog` command: one entry point, one module per subcommand.

Exit codes: 0 ok, 1 problems found (audit), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> module under tools/ exposing `add_arguments(parser)` and `run(args) -> int`
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("tools.serve", "run the HTTP service"),
    "replay": ("tools.replay", "print a session's events, or rebuild projections"),
    "audit": ("tools.audit", "check the whole log; exit 1 on any fault"),
    "export": ("tools.export", "write the log as JSONL or hive's on-disk layout"),
    "import-hive": ("tools.import_hive", "read an existing hive tree into the log"),
    "bench": ("tools.bench", "measure speed against baselines, print a table"),
    "backup": ("tools.backup", "copy the running log to a new folder, with a manifest"),
    "restore": ("tools.restore", "load a backup into an empty store and verify it"),
    "copy": ("tools.copy_log", "copy a log to another store (e.g. SQLite to PostgreSQL), verified"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivelog", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.add_argument(
            "--db",
            default=None,
            help="store URL (env HIVELOG_DB; default sqlite:///./data/hivelog.db)",
        )
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            sub_parser.set_defaults(_module=None)
            continue
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = args._module
    if module is None:
        print(f"hivelog {args.command}: not available in this build yet", file=sys.stderr)
        return 2
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
