"""`hivelog copy --from URL --to URL`: move a log between backends (or files), verified.

A backup of the source (one consistent snapshot) into a temporary folder, then a
restore into the target with the same manifest checks and full audit, so a copy
is exactly as trustworthy as a backup and restore. The temporary folder holds a full
copy of the log; its name carries the copying process's id, so a copy killed before
it could remove it (SIGKILL, power loss) has it removed by the next copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from .backup import backup
from .logio import UsageError, resolve_url, run_tool
from .restore import report, restore

PREFIX = "hivelog-copy-"


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    source = resolve_url(args.source, must_exist=True)
    target = resolve_url(args.target, must_exist=False)
    if same_log(source, target):
        raise UsageError(f"copy: --from and --to name the same log ({source}); nothing copied")
    sweep_dead(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        await backup(source, folder / "backup")
        result = await restore(folder / "backup", target, force=args.force)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report(result, args.json)


def same_log(source: str, target: str) -> bool:
    """Both URLs name one log: with --force a copy would wipe its own source and reload
    it from the temporary backup (its consumer groups and leases gone)."""
    prefix = "sqlite:///"
    if source.startswith(prefix) and target.startswith(prefix):
        a, b = Path(source[len(prefix) :]), Path(target[len(prefix) :])
        try:
            return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
        except OSError:
            return False
    return source == target


def sweep_dead(tmp: Path) -> list[Path]:
    """Remove the temporary folders of copies whose process is gone; the removed."""
    removed = []
    for folder in tmp.glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
