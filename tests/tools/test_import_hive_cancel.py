"""Ctrl-C while a group commits: the thread writing the group cannot be stopped, so
`Importer.close` waits for it to end before it rolls the load back and closes the
connection (closed under the thread, SQLite crashed or wrote outside the load)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventstore import NO_STREAM, open_store
from eventstore.bulk import BulkAppend, BulkRows, SQLiteBulkAppender
from tests.eventstore.test_bulk_append import as_rows, events, sound
from tests.support.tools_support import event_count, hivelog
from tools import import_hive
from tools.import_hive import Importer, Summary

WAIT_S = 60.0  # bound on the wait for the thread to start


class HeldAppender(SQLiteBulkAppender):
    """Its `append_many` waits for `release` before writing (a slow disk, made
    deterministic), and records in `order` when it wrote and when it was closed."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.order: list[str] = []

    def append_many(self, appends: Sequence[BulkAppend | BulkRows]) -> list[int]:
        self.entered.set()
        self.release.wait(WAIT_S)
        try:
            left = super().append_many(appends)
        except BaseException as exc:
            self.order.append(f"write failed: {type(exc).__name__}")
            raise
        self.order.append("written")
        return left

    def close(self) -> None:
        self.order.append("closed")
        super().close()


async def test_close_waits_for_a_group_commit_cancelled_in_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.db"
    url = f"sqlite:///{path}"
    store = await open_store(url)  # an empty log: the import loads into it in place
    bulk = HeldAppender(str(path))
    assert bulk.begin_load()
    monkeypatch.setattr(import_hive, "GROUP_EVENTS", 1)  # each append is a group
    importer = Importer(store, tmp_path, None, Summary(), dry_run=False, bulk=bulk)
    try:
        await importer._grouped(as_rows("first", events("first", 3), NO_STREAM), 3)
        assert await asyncio.to_thread(bulk.entered.wait, WAIT_S)  # the group's thread
        # the next group waits for that commit: Ctrl-C cancels the import there
        second = asyncio.ensure_future(
            importer._grouped(as_rows("second", events("second", 3), NO_STREAM), 3)
        )
        await asyncio.sleep(0)  # one turn of the loop: it runs up to that wait
        assert not second.done()
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        closing = asyncio.ensure_future(importer.close())
        await asyncio.sleep(0)  # one turn: it runs up to waiting for the thread
        assert bulk.order == []  # the connection is still open under the thread
        bulk.release.set()
        await closing
    finally:
        bulk.release.set()
        await store.close()
    assert bulk.order == ["written", "closed"]
    assert importer.bulk is None
    assert event_count(path) == 0  # the load was rolled back: nothing written outside it
    assert await sound(url)
    audited = await asyncio.to_thread(hivelog, "audit", "--db", url)
    assert audited.returncode == 0, audited.stdout.decode() + audited.stderr.decode()
