"""`hivelog archive` / `restore-archive` on real SQLite files and real PostgreSQL schemas,
through the real command (`db_url` here is one log on each backend).

What must hold after an archive: versions, positions and `total` unchanged, the
chain still verifies (`hivelog audit` passes), the file gives space back, the
catalogue the service restarts from is the one it had, and a fold over the archive
plus the live log equals the checkpoint. After `restore-archive` the log is the
one before, event for event.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from api.core.service import SessionService
from eventstore import RecordedEvent, open_store
from projections import catalogue as cat
from projections.envelope import new_event
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import running_server
from tests.support.sessions_support import BACKENDS
from tests.support.tools_support import hivelog, sqlite_path
from tools.audit_projections import recorded
from tools.keep_format import event_from_line, file_sha256, read_lines

T0 = 1_790_000_000.0
SESSIONS = 4
EVENTS = 60  # per session, ~8 KB each: the archive is big enough to show in the file size


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh log on each backend: a SQLite file, or a new PostgreSQL schema."""
    return log_url(request.param, request, tmp_path)


def log_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgres":
        return fresh_url(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'hivelog.db'}"


def other_backend(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh log on the backend `db_url` is not on (a copy's or a restore's target)."""
    if db_url.startswith("sqlite:"):
        return log_url("postgres", request, tmp_path)
    return f"sqlite:///{tmp_path / 'copy.db'}"


async def seed(db_url: str, *, extra_after_checkpoint: int = 0) -> None:
    """Sessions folded and checkpointed by the real service; then `extra` uncheckpointed."""
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    for n in range(SESSIONS):
        sid = f"session_{n}"
        await store.append(
            sid,
            [new_event("session_created", {"session_id": sid, "queen_id": "q"}, timestamp=T0)],
        )
        for i in range(EVENTS - 1):
            body = {"content": f"{n}-{i} " + "x" * 8000}
            await store.append(sid, [new_event("client_input_received", body, timestamp=T0 + i)])
    await service.wait_for(await store.head_position())
    await service.stop()  # saves the checkpoint
    for i in range(extra_after_checkpoint):
        body = {"content": f"late {i}"}
        await store.append("session_0", [new_event("client_input_received", body, timestamp=T0)])
    await store.close()


async def snapshot(db_url: str) -> list[RecordedEvent]:
    store = await open_store(db_url)
    try:
        return await store.read_all(0, limit=100_000)
    finally:
        await store.close()


def audit(db_url: str, *archives: Path) -> dict[str, Any]:
    args = [a for d in archives for a in ("--archive", str(d))]
    done = hivelog("audit", "--db", db_url, "--json", *args)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def archived_events(folder: Path) -> list[RecordedEvent]:
    manifest = orjson.loads((folder / "archive.json").read_bytes())
    rows = [
        event_from_line(line) for name in manifest["files"] for line in read_lines(folder, name)
    ]
    return [recorded(r) for r in rows]


async def test_archive_keep_last_then_restore(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    before = await snapshot(db_url)
    on_sqlite = db_url.startswith("sqlite:")
    path = sqlite_path(db_url)
    size_before = os.path.getsize(path) if on_sqlite else 0
    out = tmp_path / "arch"

    dry = hivelog("archive", "--db", db_url, "--keep-last", "5", "-o", str(out), "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert b"would archive 220 events of 4 streams" in dry.stdout
    assert not out.exists() and await snapshot(db_url) == before

    done = hivelog("archive", "--db", db_url, "--keep-last", "5", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr.decode()
    manifest = orjson.loads(done.stdout)
    assert manifest["events"] == SESSIONS * (EVENTS - 5)
    assert {(s["from_version"], s["before_version"]) for s in manifest["streams"]} == {(1, 56)}
    if on_sqlite:  # PostgreSQL gives the space back to its vacuum, not the file
        size_after = os.path.getsize(path)
        print(f"\narchive size figures: {size_before} -> {size_after} bytes (archive folder "
              f"{sum(f.stat().st_size for f in out.iterdir())} bytes)")  # fmt: skip
        assert size_after < size_before * 0.5

    live = await snapshot(db_url)
    assert live == [e for e in before if e.version >= 56]
    store = await open_store(db_url)
    try:
        page = await store.tail("session_1", 3)
        assert page.total == EVENTS and [e.version for e in page.events] == [58, 59, 60]
        info = await store.stream_info("session_1")
        assert info is not None and info.truncated_before == 56 and info.head_version == EVENTS
    finally:
        await store.close()

    plain = audit(db_url)  # chain and positions account for the cut; folds need the archive
    assert plain["ok"] and plain["stats"]["archived_events"] == 220
    assert "projections" in plain["skipped"]
    full = audit(db_url, out)
    assert full["ok"] and "projections" not in full["skipped"], full
    doubled = audit(db_url, out, out)  # each archived event counted once (it was twice)
    assert doubled["ok"] and "projections" not in doubled["skipped"], doubled

    # `replay --rebuild` folds the archive where it was: it still equals the checkpoint
    rebuilt_cli = hivelog("replay", "--db", db_url, "--rebuild", "--json", "--archive", str(out))
    assert rebuilt_cli.returncode == 0, rebuilt_cli.stdout.decode() + rebuilt_cli.stderr.decode()
    assert orjson.loads(rebuilt_cli.stdout)["equal"] is True
    assert orjson.loads(rebuilt_cli.stdout)["events_folded"] == len(before)
    live_only = hivelog("replay", "--db", db_url, "--rebuild", "--json")  # without: it differs
    assert live_only.returncode == 1 and orjson.loads(live_only.stdout)["equal"] is False

    # projections stay exact: the service restarts from its checkpoint to the same catalogue,
    # and folding the archive then the live log (the rebuild) equals that checkpoint
    store = await open_store(db_url)
    try:
        checkpoint = await store.load_checkpoint(cat.CHECKPOINT_NAME)
        assert checkpoint is not None
        rebuilt = cat.fold_all(sorted(archived_events(out) + live, key=lambda e: e.position))
        assert cat.encode(rebuilt) == cat.encode(cat.fold_all(before))
        assert orjson.loads(cat.encode(rebuilt)) == orjson.loads(checkpoint.state)
        service = SessionService(store)
        await service.start()
        try:
            assert service.restored_from_checkpoint
            assert cat.encode(service.catalogue) == cat.encode(rebuilt)
        finally:
            await service.stop()
    finally:
        await store.close()

    back = hivelog("restore-archive", "--db", db_url, str(out), "--json")
    assert back.returncode == 0, back.stderr.decode()
    assert orjson.loads(back.stdout)["events"] == 220
    assert await snapshot(db_url) == before
    again = audit(db_url)
    assert again["ok"] and "projections" not in again["skipped"]
    twice = hivelog("restore-archive", "--db", db_url, str(out), "--json")
    assert twice.returncode == 0 and len(orjson.loads(twice.stdout)["skipped"]) == SESSIONS


async def test_archive_never_passes_the_checkpoint(db_url: str, tmp_path: Path) -> None:
    await seed(db_url, extra_after_checkpoint=5)
    out = tmp_path / "arch"
    done = hivelog("archive", "--db", db_url, "--keep-last", "0", "--session", "session_0",
                   "-o", str(out), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    (entry,) = orjson.loads(done.stdout)["streams"]
    assert (entry["from_version"], entry["before_version"]) == (1, EVENTS + 1)  # not the 5 late
    assert audit(db_url, out)["ok"]


async def test_restore_refuses_a_tampered_archive(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    before = await snapshot(db_url)
    out = tmp_path / "arch"
    assert hivelog("archive", "--db", db_url, "--older-than", "0s", "-o", str(out)).returncode == 0
    live = await snapshot(db_url)
    assert audit(db_url)["ok"]
    # rewrite one event's content and the manifest's SHA-256 to match: the kept link refuses it
    manifest = orjson.loads((out / "archive.json").read_bytes())
    name = manifest["streams"][0]["file"]
    lines = list(read_lines(out, name))
    lines[3]["data"] = lines[3]["data"].replace("x", "y", 1)
    with gzip.open(out / name, "wb") as f:
        f.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    manifest["files"][name]["sha256"] = file_sha256(out / name)
    (out / "archive.json").write_bytes(orjson.dumps(manifest))
    bad = hivelog("restore-archive", "--db", db_url, str(out))
    assert bad.returncode != 0
    assert b"content differs from its digest" in bad.stderr + bad.stdout
    assert await snapshot(db_url) == live  # the first stream is the edited one: nothing back
    assert len(live) < len(before)


async def test_refusals(db_url: str, tmp_path: Path) -> None:
    store = await open_store(db_url)
    await store.append(
        "session_0", [new_event("session_created", {"session_id": "s"}, timestamp=T0)]
    )
    await store.close()
    out = tmp_path / "arch"
    no_checkpoint = hivelog("archive", "--db", db_url, "--keep-last", "0", "-o", str(out))
    assert no_checkpoint.returncode == 2 and b"checkpoint" in no_checkpoint.stderr
    bad_age = hivelog("archive", "--db", db_url, "--older-than", "ninety", "-o", str(out))
    assert bad_age.returncode == 2 and b"--older-than" in bad_age.stderr
    both = hivelog("archive", "--db", db_url, "--older-than", "1d", "--keep-last", "1", "-o", "x")
    assert both.returncode == 2


async def test_history_pages_say_where_the_archive_cuts(db_url: str, tmp_path: Path) -> None:
    """A real `hivelog serve`: `total` stays exact; the page reaching the cut says
    `archived_before` and has nothing older; pages above the cut are unchanged."""
    await seed(db_url)
    out = tmp_path / "arch"
    assert hivelog("archive", "--db", db_url, "--keep-last", "5", "-o", str(out)).returncode == 0
    with running_server(db_url, tmp_path, env={"HIVELOG_AGENTS_ROOTS": str(tmp_path)}) as srv:
        url = f"{srv.base_url}/api/sessions/session_1/events/history"
        above = httpx.get(url, params={"limit": 3}).json()
        assert above["total"] == EVENTS and above["has_more_older"] is True
        assert "archived_before" not in above
        at = httpx.get(url, params={"limit": 10}).json()
        assert at["total"] == EVENTS and at["returned"] == 5 and at["start_index"] == 56
        assert at["archived_before"] == 56 and at["has_more_older"] is False
        older = httpx.get(url, params={"limit": 2, "before": at["events"][2]["position"]}).json()
        assert older["returned"] == 2 and older["archived_before"] == 56
        assert older["has_more_older"] is False and older["total"] == EVENTS
        offset = httpx.get(url, params={"limit": 3, "before_offset": 57}).json()
        assert offset["archived_before"] == 56 and offset["has_more_older"] is False


async def test_backup_of_an_archived_log_restores_with_its_cuts(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Onto the same backend and onto the other one (SQLite -> PostgreSQL and back): the
    cuts come along, the copy audits clean with the archive, and restore-archive there
    gives back the log as it was before the archive."""
    await seed(db_url)
    before = await snapshot(db_url)
    out = tmp_path / "arch"
    assert hivelog("archive", "--db", db_url, "--keep-last", "5", "-o", str(out)).returncode == 0
    assert hivelog("backup", "--db", db_url, str(tmp_path / "bk")).returncode == 0
    for target in (
        log_url("sqlite" if db_url.startswith("sqlite:") else "postgres", request, tmp_path / "s"),
        other_backend(db_url, request, tmp_path),
    ):
        (tmp_path / "s").mkdir(exist_ok=True)
        done = hivelog("restore", "--db", target, str(tmp_path / "bk"))
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        report = audit(target, out)
        assert report["ok"] and report["stats"]["archived_events"] == 220, report
        info = await stream_info(target, "session_1")
        assert (info.head_version, info.truncated_before) == (EVENTS, 56)
        back = hivelog("restore-archive", "--db", target, str(out))
        assert back.returncode == 0, back.stderr.decode()
        assert await snapshot(target) == before


async def test_copy_of_an_archived_log_to_the_other_backend(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`hivelog copy` keeps the cuts either way, including a stream archived whole."""
    await seed(db_url)
    out = tmp_path / "arch"
    whole = ["--keep-last", "0", "--session", "session_3", "-o", str(tmp_path / "whole")]
    assert hivelog("archive", "--db", db_url, *whole).returncode == 0
    assert hivelog("archive", "--db", db_url, "--keep-last", "5", "-o", str(out)).returncode == 0
    live = await snapshot(db_url)
    target = other_backend(db_url, request, tmp_path)
    done = hivelog("copy", "--from", db_url, "--to", target)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert await snapshot(target) == live
    report = audit(target, out, tmp_path / "whole")
    assert report["ok"] and "projections" not in report["skipped"], report
    info = await stream_info(target, "session_3")
    assert (info.head_version, info.truncated_before) == (EVENTS, EVENTS + 1)
    back = hivelog("restore-archive", "--db", target, str(tmp_path / "whole"), "--json")
    assert back.returncode == 0 and orjson.loads(back.stdout)["events"] == EVENTS


async def stream_info(db_url: str, stream_id: str) -> Any:
    store = await open_store(db_url)
    try:
        info = await store.stream_info(stream_id)
    finally:
        await store.close()
    assert info is not None
    return info
