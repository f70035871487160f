"""`hivelog import-hive` where no log is yet builds it beside its path and links it into
place (tools/import_beside.py): nothing anyone created at the path meanwhile is replaced,
and what killed imports left beside it is removed only when no import holds it."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from eventstore import open_store
from tests.eventstore.test_bulk_append import events, sound
from tools import import_hive
from tools.bench_tools import write_hive_home
from tools.import_beside import BesideFile, sweep

EVENTS = 300


def _args(home: Path, url: str) -> argparse.Namespace:
    return argparse.Namespace(hive_home=str(home), db=url, timezone="UTC", dry_run=False, json=True)


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        found: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return found
    finally:
        conn.close()


async def test_an_import_into_no_log_links_the_finished_file_into_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also into a folder not there yet (created, as the store creates it)."""
    home, path = tmp_path / "hive", tmp_path / "new" / "log.db"
    sessions = write_hive_home(home, EVENTS, per_session=50)
    assert await import_hive._main(_args(home, f"sqlite:///{path}")) == 0
    assert orjson.loads(capsys.readouterr().out)["events_imported"] == EVENTS
    assert [p.name for p in path.parent.iterdir()] == ["log.db"]  # nothing beside
    assert _count(path) == EVENTS + sessions + 3  # a record per session and colony
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
    assert _count(path) == 1 + EVENTS + sessions + 3  # the service's event kept
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
