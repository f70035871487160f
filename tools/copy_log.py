"""`hivelog copy --from URL --to URL`: move a log between backends (or files), verified.

A backup of the source (one consistent snapshot) into a temporary folder, then a
restore into the target with the same manifest checks and full audit, so a copy
is exactly as trustworthy as a backup and restore.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from .backup import backup
from .logio import resolve_url, run_tool
from .restore import report, restore


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    source = resolve_url(args.source, must_exist=True)
    target = resolve_url(args.target, must_exist=False)
    folder = Path(tempfile.mkdtemp(prefix="hivelog-copy-"))
    try:
        await backup(source, folder / "backup")
        result = await restore(folder / "backup", target, force=args.force)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report(result, args.json)
