"""`hivelog backup` and `copy` killed (SIGKILL) part-way: the same command again
finishes the job, and nothing of the killed run is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools_support import ROOT, hivelog
from tests.tools.test_archive import seed, snapshot

# Runs `hivelog ARGS` with one function replaced by one that SIGKILLs the process on
# its call number AFTER + 1: a kill at an exact step, as a crash would.
KILL_AT = """
import importlib, os, signal, sys
from tools.cli import main

target, after = sys.argv[1], int(sys.argv[2])
module, owner, name = target.split(":")[0], *target.split(":")[1].split(".")
holder = getattr(importlib.import_module(module), owner)
original = getattr(holder, name)
calls = 0

def counted(*args, **kwargs):
    global calls
    calls += 1
    if calls > after:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)

setattr(holder, name, counted)
sys.exit(main(sys.argv[3:]))
"""

WRITE = "tools.keep_format:SegmentWriter.write"
MANIFEST = "tools.keep_format:Manifest.write"


def killed(target: str, after: int, *args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILL_AT, target, str(after), *args],
        cwd=ROOT,
        capture_output=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


@pytest.mark.parametrize(("target", "after"), [(WRITE, 0), (WRITE, 150), (MANIFEST, 0)])
async def test_a_killed_backup_is_finished_by_running_it_again(
    db_url: str, tmp_path: Path, target: str, after: int
) -> None:
    await seed(db_url)
    dest = tmp_path / "bk"
    killed(target, after, "backup", "--db", db_url, str(dest))
    assert not (dest / "manifest.json").exists()
    unfinished = hivelog("restore", str(dest), "--db", f"sqlite:///{tmp_path / 'no.db'}")
    assert unfinished.returncode == 2 and b"no manifest.json" in unfinished.stderr

    again = hivelog("backup", "--db", db_url, str(dest))
    assert again.returncode == 0, again.stderr.decode()
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    restored = hivelog("restore", str(dest), "--db", copy)
    assert restored.returncode == 0, restored.stdout.decode() + restored.stderr.decode()
    assert await snapshot(copy) == await snapshot(db_url)


async def test_a_folder_with_other_files_is_still_refused(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    dest = tmp_path / "bk"
    dest.mkdir()
    (dest / "events-000001.jsonl.gz").write_bytes(b"")
    (dest / "notes.txt").write_text("mine")
    refused = hivelog("backup", "--db", db_url, str(dest))
    assert refused.returncode == 2 and b"not an empty folder" in refused.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["events-000001.jsonl.gz", "notes.txt"]


async def test_a_killed_copy_leaves_no_copy_of_the_log_behind(db_url: str, tmp_path: Path) -> None:
    """The killed copy's temporary folder (a full copy of the log) is removed by the next
    copy; the target was never touched, so the copy again needs no --force."""
    await seed(db_url)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    killed(WRITE, 100, "copy", "--from", db_url, "--to", target, env={"TMPDIR": str(tmp)})
    assert len(list(tmp.iterdir())) == 1  # what SIGKILL left
    again = subprocess.run(
        [sys.executable, "-m", "tools", "copy", "--from", db_url, "--to", target],
        cwd=ROOT,
        capture_output=True,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    assert list(tmp.iterdir()) == []
    assert await snapshot(target) == await snapshot(db_url)


async def test_a_copy_onto_its_own_source_is_refused(db_url: str, tmp_path: Path) -> None:
    """`copy --from X --to X --force` wiped X and reloaded it from the temporary backup
    (consumer groups and leases gone); the same file by another spelling or a hard link
    too. Refused with exit 2; the log is as it was."""
    await seed(db_url)
    before = await snapshot(db_url)
    path = Path(db_url[len("sqlite:///") :])
    (tmp_path / "alias.db").hardlink_to(path)
    for target in (
        db_url,
        f"sqlite:///{path.parent}/./{path.name}",
        f"sqlite:///{tmp_path}/alias.db",
    ):
        refused = hivelog("copy", "--from", db_url, "--to", target, "--force")
        assert refused.returncode == 2 and b"same log" in refused.stderr, refused.stderr
    assert await snapshot(db_url) == before
