"""Online backup, verified restore and copy between backends, on real files and PostgreSQL.

The load test backs up while 32 writers append, restores, audits, and checks that
every event acknowledged before the backup began is in the copy. It also prints
the writers' append latency with and without a backup running (same run), for
the report; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstore import EventStore, NewEvent, open_store
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.tools_support import ROOT, hivelog
from tools.audit import audit
from tools.audit_source import open_source

WRITERS = 32
SEED_EVENTS = 60_000


async def seed(store: EventStore, events: int) -> None:
    for start in range(0, events, 1000):
        batch = [NewEvent("seeded", {"n": start + i, "pad": "p" * 120}) for i in range(1000)]
        await store.append(f"$seed-{start // 1000 % 50}", batch)
    await store.append("$gone", [NewEvent("secret", {"x": 1})])
    await store.delete_stream("$gone")
    await store.save_checkpoint("test-projection", await store.head_position(), b"state")


class Writers:
    """32 tasks appending one event at a time; each acknowledgement is recorded."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.acked: list[tuple[int, str]] = []  # (position, event id)
        self.latencies: list[tuple[float, float]] = []  # (start time, seconds)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._write(w)) for w in range(WRITERS)]

    async def _write(self, writer: int) -> None:
        n = 0
        while not self.stop.is_set() and n < 100_000:
            event = NewEvent("written", {"w": writer, "n": n}, event_id=str(uuid.uuid4()))
            started = time.perf_counter()
            result = await self.store.append(f"$w{writer}", [event])
            self.latencies.append((started, time.perf_counter() - started))
            self.acked.append((result.last_position, str(event.event_id)))
            n += 1

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    def worst(self, since: float, until: float) -> tuple[float, float, int]:
        """(max, p99) latency in ms and the count of appends started in [since, until)."""
        window = sorted(s for t, s in self.latencies if since <= t < until)
        if not window:
            return 0.0, 0.0, 0
        p99 = window[min(len(window) - 1, int(len(window) * 0.99))]
        return window[-1] * 1000, p99 * 1000, len(window)


async def run_cli(*args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(600):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


async def backup_under_load(url: str, tmp_path: Path, label: str) -> dict[str, Any]:
    store = await open_store(url)
    await seed(store, SEED_EVENTS)
    # Events acknowledged with ids, so the copy can be checked event by event.
    writers = Writers(store)
    writers.start()
    await asyncio.sleep(0.5)  # warm up
    quiet_from = time.perf_counter()
    await asyncio.sleep(2.0)
    quiet_to = time.perf_counter()
    acked_before = list(writers.acked)  # acknowledged before the backup began
    dest = tmp_path / "backup"
    backup_from = time.perf_counter()
    code, out, err = await run_cli("backup", str(dest), "--db", url, "--json")
    backup_to = time.perf_counter()
    await asyncio.sleep(0.2)
    await writers.finish()
    await store.close()
    assert code == 0, err.decode()
    manifest: dict[str, Any] = orjson.loads(out)
    assert manifest == orjson.loads((dest / "manifest.json").read_bytes())

    quiet = writers.worst(quiet_from, quiet_to)
    during = writers.worst(backup_from, backup_to)
    figures = {
        "backend": label,
        "backup_seconds": round(backup_to - backup_from, 2),
        "events_in_backup": manifest["events"],
        "without_backup_max_ms": round(quiet[0], 1),
        "without_backup_p99_ms": round(quiet[1], 1),
        "without_backup_appends": quiet[2],
        "during_backup_max_ms": round(during[0], 1),
        "during_backup_p99_ms": round(during[1], 1),
        "during_backup_appends": during[2],
    }
    print("\nbackup stall figures:", orjson.dumps(figures).decode(), file=sys.stderr)

    # Every acknowledged-before event is in the backup, at its position, with its id.
    in_backup: dict[int, str] = {}
    for name in sorted(manifest["files"]):
        if name.startswith("events-"):
            with gzip.open(dest / name) as f:
                for line in f:
                    row = orjson.loads(line)
                    in_backup[row["position"]] = row["event_id"]
    missing = [(p, i) for p, i in acked_before if in_backup.get(p) != i]
    assert not missing, missing[:5]
    assert manifest["events"] >= SEED_EVENTS + len(acked_before)
    return manifest


def restore_and_audit(src: Path, url: str, manifest: dict[str, Any]) -> None:
    restored = hivelog("restore", str(src), "--db", url, "--json", timeout=600)
    assert restored.returncode == 0, restored.stdout.decode() + restored.stderr.decode()
    result = orjson.loads(restored.stdout)
    assert result["ok"] and result["chain_head"] == manifest["chain_head"]
    assert result["events"] == manifest["events"]
    audited = hivelog("audit", "--db", url, "--json", timeout=600)
    assert audited.returncode == 0, audited.stdout.decode()
    assert orjson.loads(audited.stdout)["chain_head"] == manifest["chain_head"]


async def test_backup_while_32_writers_append_then_restore(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    manifest = await backup_under_load(url, tmp_path, "sqlite")
    restore_and_audit(tmp_path / "backup", f"sqlite:///{tmp_path / 'restored.db'}", manifest)


@pytest.mark.postgres
async def test_postgres_backup_while_32_writers_append(pg_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    url = fresh_url(pg_dsn) + "&pool_size=32"
    manifest = await backup_under_load(url, tmp_path, "postgresql")
    restore_and_audit(tmp_path / "backup", fresh_url(pg_dsn), manifest)


async def small_log(url: str) -> None:
    store = await open_store(url)
    for i in range(6):
        await store.append(f"$s{i % 3}", [NewEvent("e", {"i": i, "é": "ü"}, metadata={"m": i})])
    await store.append("$gone", [NewEvent("secret", {})])
    await store.delete_stream("$gone")
    await store.append("$s0", [NewEvent("after", None)])
    await store.save_checkpoint("p", 3, b"\x00\x01state")
    await store.close()


async def head_and_chain(url: str) -> tuple[int, Any]:
    source = await open_source(url)
    try:
        report = await audit(source)
    finally:
        await source.close()
    assert report.ok, report.faults
    return report.stats["head_position"], report.chain_head


@pytest.mark.postgres
async def test_copy_sqlite_to_postgres_and_back(pg_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    sqlite_url = f"sqlite:///{tmp_path / 'a.db'}"
    await small_log(sqlite_url)
    pg_url = fresh_url(pg_dsn)
    there = hivelog("copy", "--from", sqlite_url, "--to", pg_url, "--json")
    assert there.returncode == 0, there.stdout.decode() + there.stderr.decode()
    back_url = f"sqlite:///{tmp_path / 'b.db'}"
    back = hivelog("copy", "--from", pg_url, "--to", back_url, "--json")
    assert back.returncode == 0, back.stdout.decode() + back.stderr.decode()
    original = await head_and_chain(sqlite_url)
    assert await head_and_chain(pg_url) == original
    assert await head_and_chain(back_url) == original
    for url in (pg_url, back_url):  # the copies take new appends and keep the chain
        store = await open_store(url)
        result = await store.append("$s1", [NewEvent("next", {})])
        assert result.last_position == 9 and result.last_version == 3
        checkpoint = await store.load_checkpoint("p")
        assert checkpoint is not None and checkpoint.state == b"\x00\x01state"
        await store.close()
        position, _ = await head_and_chain(url)
        assert position == 9
    # A non-empty target is refused and left as it was, unless --force.
    again = hivelog("copy", "--from", sqlite_url, "--to", back_url)
    assert again.returncode == 2 and b"--force" in again.stderr
    assert (await head_and_chain(back_url))[0] == 9
    forced = hivelog("copy", "--from", sqlite_url, "--to", back_url, "--force")
    assert forced.returncode == 0, forced.stdout.decode()
    assert await head_and_chain(back_url) == original


async def test_restore_refuses_a_damaged_or_foreign_backup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await small_log(url)
    dest = tmp_path / "backup"
    assert hivelog("backup", str(dest), "--db", url).returncode == 0
    assert hivelog("backup", str(dest), "--db", url).returncode == 2  # DEST must be new
    damaged = tmp_path / "damaged"
    shutil.copytree(dest, damaged)
    segment = damaged / "events-000001.jsonl.gz"
    segment.write_bytes(
        gzip.compress(gzip.decompress(segment.read_bytes()).replace(b'"i":1', b'"i":7'))
    )
    target = tmp_path / "t.db"
    r = hivelog("restore", str(damaged), "--db", f"sqlite:///{target}")
    assert r.returncode == 2 and b"differs from the manifest" in r.stderr
    assert not target.exists()  # nothing was created
    r = hivelog("restore", str(tmp_path), "--db", f"sqlite:///{target}")
    assert r.returncode == 2 and b"not a hivelog backup" in r.stderr
