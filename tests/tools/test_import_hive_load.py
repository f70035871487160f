"""`hivelog import-hive` into an empty SQLite log loads it in one transaction with the
events indexes built at the end (eventstore/bulk.py, `begin_load`). A kill mid-load
(SIGKILL: no clean-up at all) leaves the log as it was: the service opens it, the audit
passes, the schema's indexes are all there, and importing again imports everything."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from eventstore import open_store
from tests.eventstore.test_bulk_append import events
from tests.eventstore.test_bulk_load import indexes
from tests.support.tools_support import ROOT, hivelog
from tests.tools.test_import_hive_parse import _children, _is_parser
from tools.bench_tools import write_hive_home

EVENTS = 160_000  # about 40 MiB of lines: several seconds of loading to kill into
WAIT_S = 60.0  # bound on each wait below


def _read_bytes(pid: int) -> int:
    """Bytes process `pid` has read so far (its files, for the parsing process)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write_locked(path: Path) -> bool:
    """Whether a transaction holds the file's write lock (the load does, to its end)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def _counts(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        streams = conn.execute("SELECT count(*) FROM streams").fetchone()[0]
        return events, streams
    finally:
        conn.close()


async def _service_appends(url: str) -> None:
    """The service's store opens the file and appends to it."""
    store = await open_store(url)
    try:
        await store.append("after_the_kill", events("after_the_kill", 1))
    finally:
        await store.close()


async def _create(url: str) -> None:
    """An empty log, as the service leaves a new one."""
    store = await open_store(url)
    await store.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("existing", [True, False], ids=["empty-log", "no-log"])
def test_a_kill_mid_load_leaves_the_log_as_it_was_and_a_rerun_imports_it_all(
    tmp_path: Path, existing: bool
) -> None:
    """Into an empty log the load runs in place (in the WAL); where no log is yet, the
    import builds it beside (`{path}.importing-*`, in a rollback journal) and links it
    into place at the end: killed, there is still no log, and the next import removes
    what the killed one left."""
    home = tmp_path / "hive"
    write_hive_home(home, EVENTS, per_session=10_000)
    lines = sum(f.stat().st_size for f in home.glob("**/events.jsonl"))
    fresh = tmp_path / "fresh.db"
    asyncio.run(_service_appends(f"sqlite:///{fresh}"))
    schema = indexes(fresh)
    path = tmp_path / "killed.db"
    url = f"sqlite:///{path}"
    if existing:
        asyncio.run(_create(url))
    parent = subprocess.Popen(
        [sys.executable, "-m", "tools", "import-hive", str(home), "--db", url, "--timezone", "UTC"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + WAIT_S
        # the parsing process starts after the load has begun; once it has read half
        # the lines, groups are being written into the load's transaction
        while parent.poll() is None and time.monotonic() < deadline:
            children = children or _children(parent.pid)
            if children and _read_bytes(children[0]) > lines // 2:
                break
            time.sleep(0.02)
        assert children, "no parsing process seen"
        beside = sorted(tmp_path.glob("killed.db.importing-*"))
        if existing:
            assert not beside
            assert _write_locked(path), "the load's transaction is not open"
        else:
            assert not path.exists()
            assert Path(f"{beside[0]}-journal").exists(), "the load is not in a journal"
            assert _write_locked(beside[0]), "the load's transaction is not open"
        assert parent.poll() is None, "the import ended before it was killed"
        os.kill(parent.pid, signal.SIGKILL)
        assert parent.wait(timeout=WAIT_S) == -signal.SIGKILL
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    deadline = time.monotonic() + WAIT_S
    while any(_is_parser(child) for child in children):  # it exits on the broken pipe
        assert time.monotonic() < deadline, "the parsing process outlived the import"
        time.sleep(0.05)

    if existing:
        audited = hivelog("audit", "--db", url)  # read-only, first to open it
        assert audited.returncode == 0, audited.stdout.decode() + audited.stderr.decode()
        assert _counts(path) == (0, 0)  # nothing of the load was committed
        assert indexes(path) == schema  # the drop was part of it
    else:
        assert not path.exists()  # as it was: no log
        assert hivelog("audit", "--db", url).returncode == 2  # "no database at ..."
        assert sorted(tmp_path.glob("killed.db.importing-*"))  # what the kill left

    again = hivelog("import-hive", str(home), "--db", url, "--timezone", "UTC", "--json")
    assert again.returncode == 0, again.stderr.decode()
    summary = orjson.loads(again.stdout)
    assert summary["events_imported"] == EVENTS
    assert summary["events_already_present"] == 0
    assert not sorted(tmp_path.glob("killed.db.importing-*"))  # removed by the rerun
    assert indexes(path) == schema
    audited = hivelog("audit", "--db", url)
    assert audited.returncode == 0, audited.stdout.decode() + audited.stderr.decode()
    asyncio.run(_service_appends(url))
    assert _counts(path)[0] == EVENTS + len(list(home.glob("**/events.jsonl"))) + 3 + 1
