"""`hivelog archive` against consumer groups, SIGKILL part-way, and out-of-range ages.

A consumer group reads the live log after its cursor, and its deliveries (ready, in
flight, parked) by position: an archive must leave every event a group has not
delivered for good. A run killed at any step must lose nothing, double nothing, and
be finished by running it again with the same folder. Every test runs on SQLite and on
PostgreSQL (`db_url` from tests/tools/test_archive.py).
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from eventstore import open_store
from eventstore.subscriptions import GroupSettings
from tests.support.pg import pg_dsn  # noqa: F401
from tests.support.server import running_server
from tests.support.sessions_support import BACKENDS
from tests.support.tools_support import ROOT, hivelog
from tests.tools.test_archive import EVENTS, SESSIONS, audit, log_url, seed
from tools.keep_format import file_sha256

ALL = SESSIONS * EVENTS  # session events; every one is at or below the checkpoint


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh log on each backend (as in test_archive.py)."""
    return log_url(request.param, request, tmp_path)


async def positions(url: str) -> set[int]:
    """The positions of the live events, on either backend."""
    store = await open_store(url)
    try:
        return {e.position for e in await store.read_all(0, limit=100_000)}
    finally:
        await store.close()


def archived(folder: Path) -> list[int]:
    manifest = orjson.loads((folder / "archive.json").read_bytes())
    found: list[int] = []
    for name in manifest["files"]:
        with gzip.open(folder / name) as f:
            found += [orjson.loads(line)["position"] for line in f if line.strip()]
    return found


def claim_all(base_url: str, group: str) -> list[int]:
    """Claim and ack until the group has nothing more; the delivered positions."""
    delivered: list[int] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(50):
            body = {"worker": "w", "max": 1000, "wait_seconds": 0}
            messages = client.post(f"/api/subscriptions/{group}/claim", json=body).json()
            if not messages["messages"]:
                return delivered
            delivered += [m["event"]["position"] for m in messages["messages"]]
            ids = [m["delivery_id"] for m in messages["messages"]]
            assert client.post(f"/api/subscriptions/{group}/ack", json={"delivery_ids": ids})
    raise AssertionError("the group never ran dry")


async def test_archive_leaves_what_consumer_groups_have_not_delivered(
    db_url: str, tmp_path: Path
) -> None:
    await seed(db_url)
    store = await open_store(db_url)
    try:
        await store.subscriptions.put_group(
            "behind", GroupSettings(ordering="none"), start_after=100
        )
    finally:
        await store.close()
    with running_server(db_url, tmp_path) as srv:  # a group with a parked delivery at 10
        put = httpx.put(
            f"{srv.base_url}/api/subscriptions/parks", json={"from": 9, "ordering": "none"}
        )
        assert put.status_code == 201
        body = {"worker": "w", "max": 1, "wait_seconds": 0}
        (msg,) = httpx.post(f"{srv.base_url}/api/subscriptions/parks/claim", json=body).json()[
            "messages"
        ]
        nack = {"delivery_ids": [msg["delivery_id"]], "action": "park", "reason": "r"}
        assert httpx.post(f"{srv.base_url}/api/subscriptions/parks/nack", json=nack).is_success
        claim_all(srv.base_url, "parks")  # everything after it delivered

    out = tmp_path / "arch"
    done = hivelog("archive", "--db", db_url, "--keep-last", "0", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr.decode()
    manifest = orjson.loads(done.stdout)
    assert manifest["max_position"] == 9 and manifest["held_back_by"] == ["behind", "parks"]
    assert max(archived(out)) <= 9
    assert await positions(db_url) >= set(range(10, ALL + 1))

    with running_server(db_url, tmp_path) as srv:
        assert sorted(claim_all(srv.base_url, "behind")) == list(range(101, ALL + 1))
        parked = httpx.get(f"{srv.base_url}/api/subscriptions/parks/parked").json()["messages"]
        assert [(m["position"], m["event"]["position"]) for m in parked] == [(10, 10)]
    assert audit(db_url, out)["ok"]


KILL_AT = """
import os, signal, sys
from eventstore.postgres import PostgresStore
from eventstore.sqlite import SQLiteStore
from tools import keep_format
from tools.cli import main

where, after = sys.argv[1], int(sys.argv[2])
calls = 0

def wrap(original):
    def counted(*args, **kwargs):
        global calls
        calls += 1
        if calls > after:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return counted

if where == "cut":
    SQLiteStore.archive_before = wrap(SQLiteStore.archive_before)
    PostgresStore.archive_before = wrap(PostgresStore.archive_before)
else:
    keep_format.SegmentWriter.write = wrap(keep_format.SegmentWriter.write)
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize(
    ("where", "after"),
    [("write", 0), ("write", 70), ("cut", 0), ("cut", 1), ("cut", 3)],
)
async def test_archive_killed_part_way_is_finished_by_a_rerun(
    db_url: str, tmp_path: Path, where: str, after: int
) -> None:
    """SIGKILL while writing the segments (nothing left the log) or between the
    per-stream cuts (some streams cut): the same command again finishes the job."""
    await seed(db_url)
    before = await positions(db_url)
    out = tmp_path / "arch"
    args = ["archive", "--db", db_url, "--keep-last", "2", "-o", str(out)]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT, where, str(after), *args],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert await positions(db_url) | set(
        archived(out) if (out / "archive.json").exists() else []
    ) == (before)

    again = hivelog(*args)
    assert again.returncode == 0, again.stderr.decode()
    in_archive = archived(out)
    live = await positions(db_url)
    assert len(in_archive) == len(set(in_archive)) == SESSIONS * (EVENTS - 2)
    assert live.isdisjoint(in_archive) and live | set(in_archive) == before
    report = audit(db_url, out)
    assert report["ok"] and "projections" not in report["skipped"], report
    assert sorted(os.listdir(out)) == ["archive.json", *sorted(orjson.loads(
        (out / "archive.json").read_bytes())["files"])]  # fmt: skip


async def test_an_age_past_the_epoch_takes_everything_it_may(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    out = tmp_path / "arch"
    huge = "99999999999999999999d"
    done = hivelog("archive", "--db", db_url, "--older-than", huge, "-o", str(out), "--dry-run")
    assert done.returncode == 0, done.stderr.decode()
    assert b"would archive 0 events of 0 streams" in done.stdout


async def test_restore_archive_refuses_an_archive_with_an_event_taken_out(
    db_url: str, tmp_path: Path
) -> None:
    """Each restored event is checked against its kept link, but one taken out of the
    file (count and SHA-256 in the manifest updated) came back as a hole: versions 1..10
    and 12.. live, the cut at 12, and the audit failing."""
    await seed(db_url)
    out = tmp_path / "arch"
    args = ["--keep-last", "5", "--session", "session_0", "-o", str(out)]
    assert hivelog("archive", "--db", db_url, *args).returncode == 0
    manifest = orjson.loads((out / "archive.json").read_bytes())
    name = manifest["streams"][0]["file"]
    lines = gzip.decompress((out / name).read_bytes()).splitlines()
    del lines[10]
    (out / name).write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    manifest["files"][name]["sha256"] = file_sha256(out / name)
    manifest["streams"][0]["events"] -= 1
    (out / "archive.json").write_bytes(orjson.dumps(manifest))
    live = await positions(db_url)

    refused = hivelog("restore-archive", "--db", db_url, str(out))
    assert refused.returncode == 2 and b"without a gap" in refused.stderr
    assert await positions(db_url) == live
    assert audit(db_url)["ok"]


@pytest.mark.parametrize("after", [0, 2])
async def test_restore_archive_killed_between_streams_is_finished_by_a_rerun(
    db_url: str, tmp_path: Path, after: int
) -> None:
    await seed(db_url)
    before = await positions(db_url)
    out = tmp_path / "arch"
    assert hivelog("archive", "--db", db_url, "--keep-last", "3", "-o", str(out)).returncode == 0
    args = ["restore-archive", "--db", db_url, str(out)]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT.replace("archive_before", "restore_archived"), "cut",
         str(after), *args],
        cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert len(await positions(db_url)) == len(before) - (SESSIONS - after) * (EVENTS - 3)
    again = hivelog(*args, "--json")
    assert again.returncode == 0, again.stderr.decode()
    assert len(orjson.loads(again.stdout)["skipped"]) == after
    assert await positions(db_url) == before
    assert audit(db_url)["ok"]


ERASE_DURING = """
import sys
from eventstore.postgres import PostgresStore
from eventstore.sqlite import SQLiteStore
from tools.cli import main

erased = []

def erase_first(original):
    async def wrapped(self, stream_id, before_version, expected):
        if not erased:  # the service erases a session between the manifest and its cut
            erased.append(await self.delete_stream("session_2"))
        return await original(self, stream_id, before_version, expected)
    return wrapped

SQLiteStore.archive_before = erase_first(SQLiteStore.archive_before)
PostgresStore.archive_before = erase_first(PostgresStore.archive_before)
sys.exit(main(sys.argv[1:]))
"""


async def test_a_session_erased_while_archiving_leaves_the_others_cut(
    db_url: str, tmp_path: Path
) -> None:
    """It stopped the run with an error at that stream (exit 1): the streams after it
    stayed live while their events were in the folder, and no re-run could finish."""
    await seed(db_url)
    out = tmp_path / "arch"
    args = ["archive", "--db", db_url, "--keep-last", "2", "-o", str(out), "--json"]
    done = subprocess.run(
        [sys.executable, "-c", ERASE_DURING, *args], cwd=ROOT, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert orjson.loads(done.stdout)["erased_meanwhile"] == ["session_2"]
    live = await positions(db_url)
    for n in (0, 1, 3):
        base = n * EVENTS
        assert live & set(range(base + 1, base + EVENTS + 1)) == {base + EVENTS - 1, base + EVENTS}
    checked = hivelog("audit", "--db", db_url, "--json", "--archive", str(out))
    counts = orjson.loads(checked.stdout)["fault_counts"]
    # the erase here is the store's alone (no service folded it into the checkpoint),
    # so only the projection check may differ; the log itself accounts exactly
    assert {check: n for check, n in counts.items() if n} in ({}, {"projections": 1})
