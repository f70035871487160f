"""The hash chain: pinned definition, both backends agree, tampering is named, erase keeps it.

Tampering is done the way an attacker with file access would: raw SQL behind the
store's back, on real SQLite files and a real PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import NewEvent, open_store
from eventstore import pg_schema as pg_schema_module
from eventstore.chain import GENESIS, content_digest, link
from eventstore.sqlite import MIGRATIONS
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import running_server
from tests.support.tools_support import hivelog, sqlite_path
from tools.audit import audit
from tools.audit_source import open_source


def test_definition_is_pinned() -> None:
    """Known answers, and the bytes spelled out as docs/chain.md defines them."""
    data = b'{"a":1}'
    digest = content_digest(data, None)
    spelled = hashlib.sha256(len(data).to_bytes(8, "big") + data + b"\x00").digest()
    assert digest == spelled
    assert digest.hex() == "f4100b83c4d250876884884264a9fc51eeee8e6bae12fe627685d53ac44e19b0"
    with_meta = hashlib.sha256(
        len(data).to_bytes(8, "big") + data + b"\x01" + (4).to_bytes(8, "big") + b"null"
    ).digest()
    assert content_digest(data, b"null") == with_meta
    assert content_digest(b"1", b"23") != content_digest(b"12", b"3")  # length-prefixed

    def lp(text: str) -> bytes:
        return len(text.encode()).to_bytes(8, "big") + text.encode()

    recorded = 1_700_000_000_000_000
    first = link(GENESIS, 1, "s", 1, "id-1", "t", recorded, digest)
    assert first == hashlib.sha256(
        b"hivelog-chain-v1" + bytes(32) + (1).to_bytes(8, "big") + lp("s")
        + (1).to_bytes(8, "big") + lp("id-1") + lp("t") + recorded.to_bytes(8, "big") + digest
    ).digest()  # fmt: skip
    assert first.hex() == "8c35a502267512056c18fd4c46b1cfe0c7cc0999b8347c025ae019ddf7af7cbb"


async def seed(url: str) -> None:
    store = await open_store(url)
    for i in range(4):
        await store.append(f"$s{i % 2}", [NewEvent("made", {"i": i}, metadata={"m": i})])
    await store.append("$gone", [NewEvent("secret", {"ssn": "1"}), NewEvent("x", None)])
    await store.delete_stream("$gone")  # positions 5, 6 erased: their links stay
    await store.append("$s0", [NewEvent("after", {"i": 9})])  # position 7
    await store.close()


async def audited(url: str, from_position: int | None = None) -> dict[str, Any]:
    source = await open_source(url)
    try:
        report = await audit(source, from_position=from_position)
    finally:
        await source.close()
    return report.to_dict()


def chain_faults(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["faults"] if f["check"] == "chain"]


def tampered(url: str, tmp_path: Path, name: str, *statements: str) -> str:
    copy = tmp_path / f"{name}.db"
    shutil.copy(sqlite_path(url), copy)
    conn = sqlite3.connect(copy)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return f"sqlite:///{copy}"


async def test_sound_chain_verifies_across_an_erase(db_url: str) -> None:
    await seed(db_url)
    report = await audited(db_url)
    assert report["ok"], report["faults"]
    assert report["stats"]["chain_links"] == 7
    store = await open_store(db_url)
    head = await store.chain_head()
    await store.close()
    assert report["chain_head"] == {"position": 7, "hash": head.hash.hex()}
    cli = hivelog("audit", "--db", db_url, "--json")
    assert cli.returncode == 0
    assert orjson.loads(cli.stdout)["chain_head"] == head.to_dict()


async def test_tampered_data_type_and_order_are_named(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    data = tampered(
        db_url,
        tmp_path,
        "data",
        "UPDATE events SET data = CAST('{\"i\":5}' AS BLOB) WHERE position = 3",
    )
    (fault,) = chain_faults(await audited(data))
    assert fault["position"] == 3 and "content changed" in fault["message"]

    kind = tampered(db_url, tmp_path, "type", "UPDATE events SET type = 'other' WHERE position = 2")
    report = await audited(kind)
    (fault,) = chain_faults(report)
    assert fault["position"] == 2 and "header" in fault["message"]
    assert report["stats"]["chain_first_break"] == 2

    # Swap two events' places in the log (their positions), everything else intact.
    order = tampered(
        db_url,
        tmp_path,
        "order",
        "UPDATE events SET position = -1 WHERE position = 2",
        "UPDATE events SET position = 2 WHERE position = 3",
        "UPDATE events SET position = 3 WHERE position = -1",
    )
    report = await audited(order)
    assert report["stats"]["chain_first_break"] == 2
    assert [f["position"] for f in chain_faults(report)][:1] == [2]

    # Rewriting a digest to match edited data still breaks the link.
    forged_digest = content_digest(b'{"i":5}', b'{"m":2}').hex()
    forged = tampered(
        db_url,
        tmp_path,
        "forged",
        "UPDATE events SET data = CAST('{\"i\":5}' AS BLOB), "
        f"digest = X'{forged_digest}' WHERE position = 3",
    )
    (fault,) = chain_faults(await audited(forged))
    assert fault["position"] == 3 and "header" in fault["message"]

    # An erased event's kept link, edited, is named too.
    erased = tampered(
        db_url, tmp_path, "erased", "UPDATE erased_links SET type = 'y' WHERE position = 6"
    )
    (fault,) = chain_faults(await audited(erased))
    assert fault["position"] == 6


async def test_audit_from_checks_a_range(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    url = tampered(db_url, tmp_path, "t", "UPDATE events SET type = 'z' WHERE position = 2")
    assert (await audited(url, from_position=3))["ok"]
    report = await audited(url, from_position=2)
    assert [f["position"] for f in chain_faults(report)] == [2]
    assert report["skipped"]["stream_versions"].startswith("not run with --from")
    cli = hivelog("audit", "--db", url, "--from", "4")
    assert cli.returncode == 0 and b"chain_from 4" in cli.stdout
    assert hivelog("audit", "--db", url, "--from", "0").returncode == 2


def old_log(path: Path) -> None:
    """A log as hivelog wrote it before the chain: migrations 1-2 only, one erased stream."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    now = time.time_ns() // 1000
    for position in range(1, 6):
        if position == 3:
            continue  # erased before the chain existed
        conn.execute(
            "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, "
            "recorded_at) VALUES (?, '$s', ?, ?, 'old', CAST('{}' AS BLOB), NULL, ?)",
            (position, position - (position > 3), f"id{position}", now),
        )
    conn.execute("INSERT INTO streams VALUES ('$s', 4, 5, 0, 0)")
    conn.execute("INSERT INTO streams VALUES ('$gone', 0, 0, 1, 1)")
    conn.execute("UPDATE log_head SET last_position = 5")
    conn.close()


async def test_migration_hashes_an_existing_log_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_log(path)
    url = f"sqlite:///{path}"
    before = await audited(url)
    assert "predates the hash chain" in before["skipped"]["chain"]
    refused = hivelog("backup", str(tmp_path / "b"), "--db", url)
    assert refused.returncode == 2 and b"predates the hash chain" in refused.stderr
    store = await open_store(url)
    head = await store.chain_head()
    await store.append("$s", [NewEvent("new", {})])
    await store.close()
    assert head.position == 5
    report = await audited(url)
    assert report["ok"], report["faults"]
    assert report["stats"]["chain_links"] == 5
    store = await open_store(url)  # reopening does not hash again
    assert (await store.chain_head()).position == 6
    await store.close()


async def test_health_reports_the_chain_head(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    store = await open_store(db_url)
    head = await store.chain_head()
    await store.close()
    import httpx

    with running_server(db_url, tmp_path) as server:
        body = httpx.get(f"{server.base_url}/api/health", timeout=10).json()
    assert body["chain_head"] == head.to_dict()


@pytest.mark.postgres
async def test_postgres_chain_matches_python_and_names_tampering(pg_dsn: str) -> None:  # noqa: F811
    url = fresh_url(pg_dsn)
    await seed(url)
    report = await audited(url)
    assert report["ok"], report["faults"]
    assert report["stats"]["chain_links"] == 7
    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"UPDATE {schema}.events SET type = 'other' WHERE position = 4")
        await conn.execute(f"UPDATE {schema}.events SET data = '{{\"i\": 7}}' WHERE position = 1")
    finally:
        await conn.close()
    report = await audited(url)
    assert [f["position"] for f in chain_faults(report)] == [1, 4]


@pytest.mark.postgres
async def test_postgres_migration_hashes_an_existing_log(
    pg_dsn: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = fresh_url(pg_dsn)
    with monkeypatch.context() as patch:
        patch.setattr(pg_schema_module, "MIGRATIONS", pg_schema_module.MIGRATIONS[:2])
        store = await open_store(url)
        await store.append("$s", [NewEvent("a", {"x": 1}), NewEvent("b", None, metadata=[1])])
        await store.append("$gone", [NewEvent("c", {})])
        await store.delete_stream("$gone")
        await store.append("$s", [NewEvent("d", {"y": "é"})])
        await store.close()
    store = await open_store(url)
    head = await store.chain_head()
    await store.append("$s", [NewEvent("e", {})])
    await store.close()
    assert head.position == 4
    report = await audited(url)
    assert report["ok"], report["faults"]
    assert report["stats"]["chain_links"] == 4  # 3 backfilled + 1 new; the old erase has none


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("erase"), st.integers(0, 3), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


async def run_operations(url: str, ops: list[tuple[str, int, int]]) -> None:
    store = await open_store(url)
    try:
        for op, stream, count in ops:
            name = f"s{stream}"
            info = await store.stream_info(name)
            if info is not None and info.deleted:
                continue
            if op == "append":
                events = [
                    NewEvent("e", {"n": n}, metadata=None if n % 2 else {"k": n})
                    for n in range(count)
                ]
                await asyncio.gather(
                    store.append(name, events), store.append(f"{name}-b", events[:1])
                )
            else:
                await store.delete_stream(name)
    finally:
        await store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_property_chain_verifies_after_random_appends_and_erases(
    ops: list[tuple[str, int, int]],
) -> None:
    folder = tempfile.mkdtemp(prefix="hivelog-chain-")
    url = f"sqlite:///{folder}/p.db"

    async def body() -> None:
        await run_operations(url, ops)
        report = await audited(url)
        assert not chain_faults(report), report["faults"]
        store = await open_store(url)
        head = await store.chain_head()
        position = await store.head_position()
        await store.close()
        assert report["chain_head"] == head.to_dict()
        assert head.position == position

    try:
        asyncio.run(body())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_property_postgres_chain_verifies(
    pg_dsn: str,  # noqa: F811
    ops: list[tuple[str, int, int]],
) -> None:
    url = fresh_url(pg_dsn)

    async def body() -> None:
        await run_operations(url, ops)
        report = await audited(url)
        assert not chain_faults(report), report["faults"]

    asyncio.run(body())
