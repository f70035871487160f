"""Checks a SQLite file before hivelog writes a single byte to it.

Opening a store switches the file to WAL and migrates it. Both are writes, so a
file that is not ours (another application's SQLite database, random bytes), one
written by a newer hivelog, or one with damaged pages must be refused *before*
that: these checks use a read-only connection (`mode=ro`) and leave the file
exactly as it was, journal mode included.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .types import StoreRefused

SQLITE_MAGIC = b"SQLite format 3\x00"
# Tables every hivelog database has had since migration 1.
HIVELOG_TABLES = frozenset({"schema_migrations", "events", "streams", "log_head", "checkpoints"})
QUICK_CHECK_LINES = 20  # problems listed in the refusal; the rest are counted


@dataclass(frozen=True, slots=True)
class FileState:
    """What the read-only look found: `fresh` means no hivelog tables yet (a new file)."""

    fresh: bool
    schema_version: int


def inspect_file(path: str, known_version: int, *, quick_check: bool = True) -> FileState:
    """Refuse (StoreRefused) anything hivelog must not open for writing; never writes."""
    file = Path(path)
    if not file.exists():
        return FileState(fresh=True, schema_version=0)
    if not file.is_file():
        raise StoreRefused(f"{file} is not a regular file")
    with file.open("rb") as handle:
        header = handle.read(len(SQLITE_MAGIC))
    if not header:
        return FileState(fresh=True, schema_version=0)  # an empty file: SQLite's own "new"
    if header != SQLITE_MAGIC:
        raise StoreRefused(f"{file} is not a SQLite database (no SQLite header); not opened")
    try:
        conn = sqlite3.connect(file.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreRefused(f"{file} cannot be opened read-only: {exc}") from None
    try:
        return _inspect(conn, file, known_version, quick_check)
    except sqlite3.DatabaseError as exc:
        raise StoreRefused(f"{file} is damaged and was not opened: {exc}") from None
    finally:
        conn.close()


def _inspect(
    conn: sqlite3.Connection, file: Path, known_version: int, quick_check: bool
) -> FileState:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return FileState(fresh=True, schema_version=0)
    missing = HIVELOG_TABLES - tables
    if missing:
        raise StoreRefused(
            f"{file} is not a hivelog database (it has tables {', '.join(sorted(tables)[:5])}, "
            f"lacks {', '.join(sorted(missing))}); not opened"
        )
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    version = int(row[0])
    if version > known_version:
        raise StoreRefused(
            f"{file} was written by a newer hivelog (schema version {version}; this one knows "
            f"up to {known_version}); upgrade hivelog. The file was not changed"
        )
    if quick_check and not _checked_unchanged(file):
        problems = quick_check_problems(conn)
        if problems:
            raise StoreRefused(
                f"{file} failed PRAGMA quick_check ({len(problems)} problem(s): "
                f"{'; '.join(problems[:QUICK_CHECK_LINES])}); not opened. Restore from a "
                "backup (`hivelog restore`), or inspect it with `hivelog audit`"
            )
        _CHECKED[str(file.resolve())] = _stamp(file)
    return FileState(fresh=False, schema_version=version)


# Files that passed quick_check in this process, by (size, mtime): `hivelog serve`
# checks before uvicorn starts and the store checks again on open; the second look
# at an unchanged file skips the full read (seconds on a large log).
_CHECKED: dict[str, tuple[int, int]] = {}


def _stamp(file: Path) -> tuple[int, int]:
    stat = file.stat()
    return stat.st_size, stat.st_mtime_ns


def _checked_unchanged(file: Path) -> bool:
    return _CHECKED.get(str(file.resolve())) == _stamp(file)


def quick_check_problems(conn: sqlite3.Connection) -> list[str]:
    """`PRAGMA quick_check` lines, empty when the file is sound."""
    try:
        lines = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:  # damage bad enough to stop the check itself
        return [str(exc)]
    return [] if lines == ["ok"] else lines
