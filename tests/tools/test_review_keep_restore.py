"""`hivelog restore` from a backup that is damaged but consistent with its manifest.

The SHA-256 check only proves the files are the ones the manifest names; an edited
file with its hash updated, or a manifest rewritten, passes it. Such a backup must be
refused before the target changes: with `--force` the log already there must stay
(the old code emptied it first, then loaded, then audited the damage in place).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstore import open_store
from eventstore.chain import GENESIS, content_digest, link
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.tools_support import hivelog
from tests.tools.test_archive import seed, snapshot
from tools.keep_format import file_sha256

Lines = list[dict[str, Any]]
SEGMENT = "events-000001.jsonl.gz"


def edited(backup: Path, where: Path, edit: Callable[[Lines], Lines], *, rechain: bool) -> Path:
    """A copy of `backup` with its events edited and the manifest's SHA-256 updated;
    `rechain`: digests, links and the manifest's chain head recomputed as well, so only
    loading can find the fault."""
    shutil.copytree(backup, where)
    lines = edit(
        [orjson.loads(x) for x in gzip.decompress((where / SEGMENT).read_bytes()).splitlines()]
    )
    manifest = orjson.loads((where / "manifest.json").read_bytes())
    if rechain:
        prev = GENESIS
        for x in lines:
            meta = None if x["metadata"] is None else x["metadata"].encode()
            digest = content_digest(x["data"].encode(), meta)
            prev = link(prev, x["position"], x["stream_id"], x["version"], x["event_id"],
                        x["type"], x["recorded_at_us"], digest)  # fmt: skip
            x["digest"], x["chain"] = digest.hex(), prev.hex()
        manifest["chain_head"]["hash"] = prev.hex()
    (where / SEGMENT).write_bytes(gzip.compress(b"".join(orjson.dumps(x) + b"\n" for x in lines)))
    manifest["files"][SEGMENT]["sha256"] = file_sha256(where / SEGMENT)
    (where / "manifest.json").write_bytes(orjson.dumps(manifest))
    return where


def content(lines: Lines) -> Lines:
    lines[5]["data"] = lines[5]["data"].replace("x", "y", 1)
    return lines


def doubled(lines: Lines) -> Lines:
    return [*lines[:6], lines[5], *lines[7:]]


def same_id(lines: Lines) -> Lines:
    lines[6]["event_id"] = lines[5]["event_id"]
    return lines


CASES = [
    ("content", content, False, b"position 6: content differs from its digest"),
    ("doubled", doubled, False, b"position 6: not after position 6"),
    ("same_id", same_id, True, b"does not load, nothing restored"),
]


@pytest.fixture
async def backup(tmp_path: Path) -> Path:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source)
    assert hivelog("backup", "--db", source, str(tmp_path / "bk")).returncode == 0
    return tmp_path / "bk"


@pytest.mark.parametrize(("name", "edit", "rechain", "says"), CASES)
async def test_a_damaged_backup_leaves_the_log_there(
    backup: Path, tmp_path: Path, name: str, edit: Callable[[Lines], Lines], rechain: bool,
    says: bytes,
) -> None:  # fmt: skip
    target = f"sqlite:///{tmp_path / 'target.db'}"
    store = await open_store(target)
    try:
        await store.append("session_other", [*map(_event, range(3))])
    finally:
        await store.close()
    before = await snapshot(target)
    bad = edited(backup, tmp_path / name, edit, rechain=rechain)
    done = hivelog("restore", str(bad), "--db", target, "--force")
    assert done.returncode == 2, done.stdout.decode() + done.stderr.decode()
    assert says in done.stderr and b"Traceback" not in done.stderr
    assert await snapshot(target) == before


async def test_postgres_target_stays_on_a_failed_load(
    backup: Path,
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
) -> None:
    target = fresh_url(pg_dsn)
    good = hivelog("restore", str(backup), "--db", target)
    assert good.returncode == 0, good.stdout.decode() + good.stderr.decode()
    before = await snapshot(target)
    for name, edit, rechain, _ in CASES:
        bad = edited(backup, tmp_path / name, edit, rechain=rechain)
        done = hivelog("restore", str(bad), "--db", target, "--force")
        assert done.returncode == 2 and b"nothing restored" in done.stderr, name
        assert await snapshot(target) == before, name


def _event(n: int) -> Any:
    from eventstore import NewEvent

    return NewEvent("note", {"n": n})


async def test_an_archived_log_is_copied_into_postgres_with_its_cuts(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
) -> None:
    """PostgreSQL kept no archive cuts: the copy failed its own audit (versions missing,
    positions unaccounted) after loading, and a copy back to SQLite had lost the cuts for
    good (restore-archive then called every stream live); then the copy was refused.
    Now PostgreSQL keeps them: the copy audits clean with the archive, and a copy back
    to SQLite still has them, so restore-archive there gives the log before the archive."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    await seed(source)
    before = await snapshot(source)
    out = tmp_path / "arch"
    assert hivelog("archive", "--db", source, "--keep-last", "5", "-o", str(out)).returncode == 0
    target = fresh_url(pg_dsn)
    done = hivelog("copy", "--from", source, "--to", target)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    checked = hivelog("audit", "--db", target, "--json", "--archive", str(out))
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    back = f"sqlite:///{tmp_path / 'back.db'}"
    again = hivelog("copy", "--from", target, "--to", back)
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    assert hivelog("restore-archive", "--db", back, str(out)).returncode == 0
    assert await snapshot(back) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_consumer_group_past_the_restored_head_delivers_new_events(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
    backend: str,
) -> None:
    """Groups are not in a backup; a group whose cursor was past the restored head
    never delivered the events appended after the restore at positions up to it
    (cursor 280, head 250, lag 0, nothing delivered)."""
    from eventstore import NewEvent
    from eventstore.subscriptions import GroupSettings
    from tests.support.server import running_server
    from tests.tools.test_review_keep_archive import claim_all

    url = fresh_url(pg_dsn) if backend == "postgresql" else f"sqlite:///{tmp_path / 'l.db'}"
    await seed(url)
    assert hivelog("backup", "--db", url, str(tmp_path / "bk")).returncode == 0
    store = await open_store(url)
    try:
        await store.append("session_0", [NewEvent("note", {"n": n}) for n in range(40)])
        settings = GroupSettings(ordering="none")
        await store.subscriptions.put_group("mailer", settings, start_after=280)
    finally:
        await store.close()
    done = hivelog("restore", str(tmp_path / "bk"), "--db", url, "--force")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    store = await open_store(url)
    try:
        await store.append("session_0", [NewEvent("note", {"n": n}) for n in range(10)])
    finally:
        await store.close()
    with running_server(url, tmp_path) as srv:
        assert sorted(claim_all(srv.base_url, "mailer")) == list(range(241, 251))
