"""Importing into a SQLite log that does not exist yet: built beside it, then linked into
place.

A log file that is not there cannot be open anywhere, so `hivelog import-hive` builds
the whole log in a file of its own beside it (`{path}.importing-{pid}-{random}`), where
the load can run in a rollback journal (eventstore/bulk.py, `begin_load(own_file=True)`):
its pages are written once, not into the WAL and again into the file. Only the finished
file, closed and synced, appears at `path`, by `os.link`, which fails if anything created
`path` meanwhile (a service that started): then the temporary file is dropped and the
import runs again into what is there, as for any log. So a crash or kill leaves `path` as
it was (absent), a service never sees a half-built log, and nothing anyone wrote to
`path` is replaced. A killed import's temporary file is removed by the next import
beside the same path (`sweep`): the file is locked (`flock`) while its import runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import secrets
from pathlib import Path

SIDE_FILES = ("-journal", "-wal", "-shm")
MARK = ".importing-"
# New names tried when another import's sweep removed the file just created (it was
# not locked yet): each try is a fresh random name, so a second loss is already rare.
CREATE_ATTEMPTS = 8


def _lexists(path: str) -> bool:
    return os.path.lexists(path)


class BesideFile:
    """The temporary file an import into an absent log is built in."""

    def __init__(self, path: str) -> None:
        self.path = path
        # Created here and locked (flock) until published or dropped; this descriptor is
        # closed only after SQLite has closed the file (closing any descriptor of a file
        # drops the process's POSIX locks on it, which are SQLite's).
        self.temp, fd = _create_locked(path)
        self._fd: int | None = fd

    @classmethod
    def for_absent(cls, path: str) -> BesideFile | None:
        """A file to build the log in, if nothing is at `path` (nor its journal or WAL);
        leftovers of killed imports beside it are removed first (also beside a log
        that exists: they would stay there for good)."""
        sweep(path)
        if any(_lexists(path + suffix) for suffix in ("", *SIDE_FILES)):
            return None
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as the store would
        return cls(path)

    def publish(self) -> bool:
        """Put the finished file (every connection to it closed) at `path`: synced,
        linked (False, and nothing changed, if something is at `path` now, the file
        was not closed cleanly or the filesystem has no hard links: the caller drops it
        and imports into `path` as into any log), its temporary name removed, the
        folder synced."""
        fd = self._fd
        if fd is None or any(_lexists(self.temp + suffix) for suffix in SIDE_FILES):
            return False
        os.fsync(fd)
        try:
            os.link(self.temp, self.path)
        except OSError:  # FileExistsError; EPERM or ENOTSUP where links are not made
            return False
        os.unlink(self.temp)
        _sync_folder(self.path)
        self._release()
        return True

    def drop(self) -> None:
        """Remove the temporary file (and a journal or WAL of it)."""
        _unlink_all(self.temp)
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def sweep(path: str) -> list[str]:
    """Remove what imports killed while building `path` left beside it (a temporary file
    no running import holds locked); the files removed."""
    removed: list[str] = []
    folder, name = os.path.split(os.path.abspath(path))
    for candidate in sorted(Path(folder).glob(f"{glob.escape(name)}{MARK}*")):
        temp = str(candidate)
        if temp.endswith(SIDE_FILES):
            if _orphan(temp):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                    removed.append(temp)
            continue
        try:
            fd = os.open(temp, os.O_RDONLY)
        except OSError:
            continue
        if not _lock(fd):  # a running import holds it
            os.close(fd)
            continue
        try:
            _unlink_all(temp)
            removed.append(temp)
        finally:
            os.close(fd)
    return removed


def _create_locked(path: str) -> tuple[str, int]:
    """A new temporary file beside `path`, locked: (its name, its descriptor). Until
    the lock is taken, another import's sweep may lock and remove it (it looks like a
    killed import's); then it is tried again under a new name."""
    for _ in range(CREATE_ATTEMPTS):
        temp = f"{path}{MARK}{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        if _lock(fd) and _still_named(fd, temp):
            return temp, fd
        os.close(fd)  # a sweep has it: it removes the name, if it has not yet
    raise OSError(f"could not create a file beside {path} in {CREATE_ATTEMPTS} attempts")


def _lock(fd: int) -> bool:
    """Whether this exclusive flock was taken at once (not: another process holds the
    file, an import building it or a sweep removing it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _still_named(fd: int, name: str) -> bool:
    """Whether the open file is still the one at `name` (a sweep did not unlink it
    before the lock was taken)."""
    opened = os.fstat(fd)
    try:
        named = os.stat(name)
    except FileNotFoundError:
        return False
    return opened.st_nlink > 0 and (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _unlink_all(temp: str) -> None:
    """Remove a temporary file and its side files; those first, so a kill in between
    leaves the main file, which the next sweep finds."""
    for suffix in (*SIDE_FILES, ""):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp + suffix)


def _orphan(side: str) -> bool:
    """Whether a side file's temporary file is gone (removed by an older import, which
    unlinked it first): no import can be using the side file."""
    main = next(side.removesuffix(suffix) for suffix in SIDE_FILES if side.endswith(suffix))
    return not _lexists(main)


def _sync_folder(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
