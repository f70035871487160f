"""The `hivelog` command: one entry point, one module per subcommand.

The parser is built from argument declarations only (`tools.cli_args`); a
subcommand's module, and whatever it needs, is imported when that subcommand
runs. Exit codes: 0 ok, 1 problems found (audit), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from api.core.version import hivelog_version
from tools import cli_args
from tools.cli_args import Declare

# subcommand -> (module under tools/ exposing `run(args) -> int`, help, its arguments)
SUBCOMMANDS: dict[str, tuple[str, str, Declare]] = {
    "serve": ("tools.serve", "run the HTTP service", cli_args.serve),
    "replay": (
        "tools.replay",
        "print a session's events, or rebuild projections",
        cli_args.replay,
    ),
    "audit": ("tools.audit", "check the whole log; exit 1 on any fault", cli_args.audit),
    "export": (
        "tools.export",
        "write the log as JSONL or hive's on-disk layout",
        cli_args.export,
    ),
    "import-hive": (
        "tools.import_hive",
        "read an existing hive tree into the log",
        cli_args.import_hive,
    ),
    "bench": ("tools.bench", "measure speed against baselines, print a table", cli_args.bench),
    "worker": (
        "tools.worker",
        "run a command once per message of a consumer group",
        cli_args.worker,
    ),
    "backup": (
        "tools.backup",
        "copy the running log to a new folder, with a manifest",
        cli_args.backup,
    ),
    "restore": (
        "tools.restore",
        "load a backup into an empty store and verify it",
        cli_args.restore,
    ),
    "archive": (
        "tools.archive",
        "move old events of session streams to a verified archive folder (truncate-before)",
        cli_args.archive,
    ),
    "restore-archive": (
        "tools.restore_archive",
        "put an archive's events back into the live log, checked against their links",
        cli_args.restore_archive,
    ),
    "copy": (
        "tools.copy_log",
        "copy a log to another store (e.g. SQLite to PostgreSQL), verified",
        cli_args.copy,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivelog", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hivelog {hivelog_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text, declare) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.add_argument(
            "--db",
            default=None,
            help="store URL (env HIVELOG_DB; default sqlite:///./data/hivelog.db)",
        )
        declare(sub_parser)
        sub_parser.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
