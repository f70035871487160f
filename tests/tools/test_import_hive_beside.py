"""`hivelog import-hive` where no log is yet builds it beside its path and links it into
place (tools/import_beside.py): nothing anyone created at the path meanwhile is replaced,
and what killed imports left beside it is removed only when no import holds it."""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from eventstore import open_store
from tests.eventstore.test_bulk_append import events, sound
from tests.support.tools_support import event_count
from tools import import_hive
from tools.bench_tools import write_hive_home
from tools.import_beside import MARK, BesideFile, sweep

EVENTS = 300


def _args(home: Path, url: str) -> argparse.Namespace:
    return argparse.Namespace(hive_home=str(home), db=url, timezone="UTC", dry_run=False, json=True)


async def test_an_import_into_no_log_links_the_finished_file_into_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also into a folder not there yet (created, as the store creates it)."""
    home, path = tmp_path / "hive", tmp_path / "new" / "log.db"
    sessions = write_hive_home(home, EVENTS, per_session=50)
    assert await import_hive._main(_args(home, f"sqlite:///{path}")) == 0
    assert orjson.loads(capsys.readouterr().out)["events_imported"] == EVENTS
    assert [p.name for p in path.parent.iterdir()] == ["log.db"]  # nothing beside
    assert event_count(path) == EVENTS + sessions + 3  # a record per session and colony
    assert await sound(f"sqlite:///{path}")


async def test_a_log_created_meanwhile_is_kept_and_imported_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service that starts during the import creates the log and appends to it: the
    finished file is not linked over it; the import runs again, into that log."""
    home, path = tmp_path / "hive", tmp_path / "log.db"
    sessions = write_hive_home(home, EVENTS, per_session=50)
    publish = BesideFile.publish
    seen: list[bool] = []

    def service_first(self: BesideFile) -> bool:
        async def service() -> None:
            store = await open_store(f"sqlite:///{path}")
            await store.append("service", events("service", 1))
            await store.close()

        with ThreadPoolExecutor(1) as pool:  # the service: its own loop
            pool.submit(asyncio.run, service()).result()
        published = publish(self)
        seen.append(published)
        return published

    monkeypatch.setattr(BesideFile, "publish", service_first)
    assert await import_hive._main(_args(home, f"sqlite:///{path}")) == 0
    assert seen == [False]
    assert orjson.loads(capsys.readouterr().out)["events_imported"] == EVENTS
    assert event_count(path) == 1 + EVENTS + sessions + 3  # the service's event kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hive", "log.db"]
    assert await sound(f"sqlite:///{path}")


def test_a_sweep_removes_only_what_no_import_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    running = BesideFile(path)  # an import under way: its file is locked
    left = BesideFile(path)
    Path(f"{left.temp}-journal").write_bytes(b"hot")
    left._release()  # as a killed import leaves it: no lock, a journal beside
    assert sweep(path) == [left.temp]
    assert not Path(left.temp).exists() and not Path(f"{left.temp}-journal").exists()
    assert Path(running.temp).exists()
    running.drop()
    assert list(tmp_path.iterdir()) == []
    again = BesideFile.for_absent(path)
    assert again is not None
    again.drop()


def test_nothing_is_built_beside_a_log_that_exists(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    for suffix in ("", "-wal", "-journal"):
        Path(f"{path}{suffix}").write_bytes(b"")
        assert BesideFile.for_absent(str(path)) is None
        Path(f"{path}{suffix}").unlink()


def _leftover(path: str) -> str:
    """A killed import's temporary file and journal: created, not locked."""
    temp = f"{path}{MARK}1-0badcafe"
    Path(temp).write_bytes(b"half a log")
    Path(f"{temp}-journal").write_bytes(b"hot")
    return temp


def test_leftovers_beside_a_log_that_exists_are_removed(tmp_path: Path) -> None:
    """Once a log is at the path, no import builds beside it again: its sweep is the
    only one that can remove what a killed import left."""
    path = tmp_path / "log.db"
    path.write_bytes(b"")
    _leftover(str(path))
    running = BesideFile(str(path))  # an import under way beside it: kept
    assert BesideFile.for_absent(str(path)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.db", Path(running.temp).name]
    running.drop()


def test_a_file_swept_before_it_was_locked_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another import's sweep, between this one's creating its file and locking it,
    takes the file for a killed import's and removes it: a new one is made."""
    path = str(tmp_path / "log.db")
    flock = fcntl.flock
    swept: list[str] = []
    calls = [0]

    def sweep_first(fd: int, operation: int) -> None:
        calls[0] += 1
        if calls[0] == 1:  # the other import's sweep (its own flock is not this one)
            swept.extend(sweep(path))
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", sweep_first)
    made = BesideFile(path)
    monkeypatch.undo()
    assert len(swept) == 1 and swept[0].startswith(f"{path}{MARK}")
    assert made.temp != swept[0] and Path(made.temp).exists()
    assert sweep(path) == []  # locked: no other import removes it
    assert [p.name for p in tmp_path.iterdir()] == [Path(made.temp).name]
    made.drop()


def test_a_file_a_sweep_holds_is_left_to_it_and_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other import's sweep locked the new file first (and goes on to remove it)."""
    path = str(tmp_path / "log.db")
    flock = fcntl.flock
    held: list[tuple[str, int]] = []

    def sweep_holds_it(fd: int, operation: int) -> None:
        if not held:  # the sweep opens and locks the only file there: the new one
            first = str(next(tmp_path.glob(f"log.db{MARK}*")))
            held.append((first, os.open(first, os.O_RDONLY)))
            flock(held[0][1], fcntl.LOCK_EX | fcntl.LOCK_NB)
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", sweep_holds_it)
    made = BesideFile(path)
    monkeypatch.undo()
    first, fd = held[0]
    assert made.temp != first
    os.unlink(first)  # the sweep goes on: removes it, lets it go
    os.close(fd)
    assert sweep(path) == []  # the new one is locked
    assert [p.name for p in tmp_path.iterdir()] == [Path(made.temp).name]
    made.drop()


async def test_an_import_where_hard_links_cannot_be_made_builds_the_log_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """vfat, exFAT, some SMB or FUSE mounts: link(2) fails with EPERM (or ENOTSUP). The
    finished file is dropped and the import runs again into the path, as into any log."""
    home, path = tmp_path / "hive", tmp_path / "log.db"
    sessions = write_hive_home(home, EVENTS, per_session=50)

    def no_links(source: str, target: str) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", source, None, target)

    monkeypatch.setattr(os, "link", no_links)
    assert await import_hive._main(_args(home, f"sqlite:///{path}")) == 0
    assert orjson.loads(capsys.readouterr().out)["events_imported"] == EVENTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hive", "log.db"]
    assert event_count(path) == EVENTS + sessions + 3
    assert await sound(f"sqlite:///{path}")


def test_side_files_go_before_their_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A drop killed half-way leaves the temporary file (which the next sweep finds),
    not a journal beside nothing; a journal beside nothing (an older import's) is
    removed by the sweep too."""
    path = str(tmp_path / "log.db")
    made = BesideFile(path)
    Path(f"{made.temp}-journal").write_bytes(b"hot")
    unlink = os.unlink

    def killed_after_one(name: str) -> None:
        unlink(name)
        raise KeyboardInterrupt  # the kill, after the first file

    monkeypatch.setattr(os, "unlink", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        made.drop()
    monkeypatch.undo()
    made._release()  # as a killed import leaves it: no lock
    assert [p.name for p in tmp_path.iterdir()] == [Path(made.temp).name]
    orphan = _leftover(path)
    Path(orphan).unlink()  # what the old order left: a journal beside nothing
    assert sweep(path) == sorted([made.temp, f"{orphan}-journal"])
    assert list(tmp_path.iterdir()) == []
