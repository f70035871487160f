"""`hivelog import-hive` and `export --format hive` on real trees, as the real command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstore import EventStore, open_store
from projections import catalogue as cat
from projections.envelope import new_event
from tests.support.hive_tree import Tree, write_tree
from tests.support.tools_support import hivelog, jsonl
from tools.hive_tail import read_events_tail

T0 = 1_790_000_000.0


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    r = hivelog(*args, "--json")
    assert r.returncode in (0, 1), r.stderr.decode()
    return r.returncode, orjson.loads(r.stdout)


async def session_events(db_url: str) -> dict[str, list[tuple[str, Any]]]:
    """Every session stream's events as (type, envelope), in order."""
    store = await open_store(db_url)
    try:
        return await _session_events(store)
    finally:
        await store.close()


async def _session_events(store: EventStore) -> dict[str, list[tuple[str, Any]]]:
    found: dict[str, list[tuple[str, Any]]] = {}
    after = 0
    while page := await store.read_all(after_position=after, limit=5000):
        for event in page:
            if not event.stream_id.startswith("$"):
                found.setdefault(event.stream_id, []).append((event.type, event.data))
        after = page[-1].position
    return found


async def catalogue_sessions(db_url: str) -> dict[str, dict[str, Any]]:
    store = await open_store(db_url)
    events = await store.read_all(0, 1_000_000)
    await store.close()
    # hive's layout keeps no order across sessions: compare the catalogue by session id
    return {s["session_id"]: s for s in cat.to_dict(cat.fold_all(events))["sessions"]}


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return write_tree(tmp_path / "hive")


async def test_import_a_generated_tree(tree: Tree, db_url: str) -> None:
    code, summary = run_json(
        "import-hive", str(tree.home), "--db", db_url, "--timezone", "Europe/Berlin"
    )
    assert code == 1  # unparseable lines were found: reported, skipped, never silent
    assert summary["sessions_found"] == summary["sessions_imported"] == 12
    assert summary["events_imported"] == tree.good_events > 3000
    assert summary["lines_skipped"] == 3
    assert summary["colonies_found"] == 2
    reported = {(p["source"], p["line"]) for p in summary["problems"] if p["line"]}
    assert reported == set(tree.bad_lines)
    assert any(p["source"] == "colonies/broken/metadata.json" for p in summary["problems"])
    assert summary["problem_count"] == 4

    imported = await session_events(db_url)
    assert {sid: len(evs) for sid, evs in imported.items()} == {
        sid: n for sid, (_, n) in tree.sessions.items()
    }
    first = sorted(tree.sessions)[0]
    r = hivelog("replay", first, "--db", db_url, "--json")
    events = jsonl(r.stdout)
    # 2026-03-28 23:30 in Berlin (UTC+1) is 22:30 UTC; the original is kept in metadata
    assert events[0]["data"]["timestamp"] == "2026-03-28T22:30:00+00:00"
    origin = events[0]["metadata"]["hive_import"]
    assert origin["original_timestamp"] == "2026-03-28T23:30:00"
    assert origin["source"].endswith(f"/{first}/events.jsonl") and origin["line"] == 1
    marker = next(e for e in events if e["type"] == "colony_fork_marker")
    assert marker["data"]["node_id"] is None and marker["data"]["run_id"] is None
    assert marker["metadata"]["hive_import"]["line"] == 3  # blank lines keep their numbers
    assert run_json("audit", "--db", db_url)[0] == 0


async def test_import_twice_imports_nothing_new(tree: Tree, db_url: str) -> None:
    hivelog("import-hive", str(tree.home), "--db", db_url)
    store = await open_store(db_url)
    head = await store.head_position()
    await store.close()
    code, again = run_json("import-hive", str(tree.home), "--db", db_url)
    assert code == 1 and again["lines_skipped"] == 3  # still unparseable: reported again
    assert again["events_imported"] == 0 and again["sessions_imported"] == 0
    assert again["events_already_present"] == tree.good_events
    store = await open_store(db_url)
    assert await store.head_position() == head  # not even an import record was added
    await store.close()
    # hive appends to a session: only the new lines come in
    sid, (queen, _) = sorted(tree.sessions.items())[3]
    path = tree.home / "agents" / "queens" / queen / "sessions" / sid / "events.jsonl"
    with path.open("a") as f:
        f.write(
            json.dumps({"type": "custom", "data": {"k": 1}, "timestamp": "2026-04-01T10:00:00"})
        )
        f.write("\n")
    _, third = run_json("import-hive", str(tree.home), "--db", db_url)
    assert third["events_imported"] == 1 and third["sessions_imported"] == 1


async def test_dry_run_appends_nothing(tree: Tree, db_url: str) -> None:
    _, summary = run_json("import-hive", str(tree.home), "--db", db_url, "--dry-run")
    assert summary["events_imported"] == tree.good_events
    store = await open_store(db_url)
    assert await store.head_position() == 0
    await store.close()


async def test_deleted_and_foreign_sessions_are_not_touched(tree: Tree, db_url: str) -> None:
    first, second = sorted(tree.sessions)[:2]
    store = await open_store(db_url)
    await store.append(first, [new_event("session_created", {"session_id": first}, timestamp=T0)])
    await store.append(second, [new_event("session_created", {"session_id": second}, timestamp=T0)])
    await store.delete_stream(second)
    await store.close()
    _, summary = run_json("import-hive", str(tree.home), "--db", db_url)
    assert summary["sessions_skipped"] == 2
    reasons = " ".join(p["reason"] for p in summary["problems"])
    assert f"session {first} is already in the log, not imported from here" in reasons
    assert f"session {second} was deleted in the log; not re-imported" in reasons
    assert len((await session_events(db_url))[first]) == 1


def test_import_usage_errors(tmp_path: Path, db_url: str) -> None:
    assert hivelog("import-hive", str(tmp_path / "none"), "--db", db_url).returncode == 2
    r = hivelog("import-hive", str(tmp_path), "--db", db_url, "--timezone", "Mars/Olympus")
    assert r.returncode == 2 and b"unknown time zone" in r.stderr


async def test_round_trip_of_an_imported_tree(tree: Tree, db_url: str, tmp_path: Path) -> None:
    hivelog("import-hive", str(tree.home), "--db", db_url, "--timezone", "Europe/Berlin")
    out = tmp_path / "exported"
    old = ("--layout", "3c390c9e")
    code, summary = run_json("export", "--format", "hive", *old, "-o", str(out), "--db", db_url)
    assert code == 0 and summary["sessions"] == 12 and summary["events"] == tree.good_events
    for sid, (queen, count) in tree.sessions.items():
        folder = out / "agents" / "queens" / queen / "sessions" / sid
        original = tree.home / "agents" / "queens" / queen / "sessions" / sid
        assert (folder / "meta.json").read_bytes() == (original / "meta.json").read_bytes()
        events, total, _ = read_events_tail(folder / "events.jsonl", 2000)  # hive's reader
        assert total == count and len(events) == min(count, 2000)
        assert all(e["timestamp"].endswith("+00:00") for e in events)
    second = f"sqlite:///{tmp_path / 'second.db'}"
    code, again = run_json("import-hive", str(out), "--db", second)
    assert code == 0 and again["problem_count"] == 0
    assert await session_events(second) == await session_events(db_url)
    assert await catalogue_sessions(second) == await catalogue_sessions(db_url)
    refused = hivelog("export", "--format", "hive", *old, "-o", str(out), "--db", db_url)
    assert refused.returncode == 2 and b"--force" in refused.stderr
    forced = hivelog("export", "--format", "hive", *old, "-o", str(out), "--db", db_url, "--force")
    assert forced.returncode == 0


async def test_round_trip_of_a_service_log(db_url: str, tmp_path: Path) -> None:
    store = await open_store(db_url)
    for n in range(3):
        sid = f"s{n}"
        await store.append(
            sid,
            [
                new_event(
                    "session_created",
                    {"session_id": sid, "queen_id": "queen_growth"},
                    timestamp=T0 + n,
                ),
                new_event(
                    "queen_identity_selected",
                    {"queen_id": "queen_growth", "name": "A", "title": "B"},
                    timestamp=T0 + n,
                ),
                new_event(
                    "worker_colony_loaded",
                    {
                        "colony_id": "c",
                        "colony_name": "c",
                        "agent_path": "/a/c",
                        "worker_name": "w",
                    },
                    timestamp=T0 + n + 1,
                    colony_id="c",
                ),
                new_event("client_input_received", {"content": "hi\nthere"}, timestamp=T0 + n + 2),
            ],
        )
    await store.append("$agents", [new_event("agent_deleted", {"agent_path": "/x"}, timestamp=T0)])
    await store.close()
    out = tmp_path / "home"
    old = ("--layout", "3c390c9e")
    assert (
        hivelog("export", "--format", "hive", *old, "-o", str(out), "--db", db_url).returncode == 0
    )
    meta = json.loads((out / "agents/queens/queen_growth/sessions/s1/meta.json").read_text())
    assert meta["queen_id"] == "queen_growth" and meta["agent_path"] == "/a/c"
    assert meta["created_at"] == T0 + 1
    summary = json.loads((out / "agents/queens/queen_growth/sessions/s1/summary.json").read_text())
    assert summary["message_count"] == 1 and summary["last_message"] == "hi\nthere"
    second = f"sqlite:///{tmp_path / 'second.db'}"
    assert hivelog("import-hive", str(out), "--db", second).returncode == 0
    assert await session_events(second) == await session_events(db_url)
    assert await catalogue_sessions(second) == await catalogue_sessions(db_url)
    one = tmp_path / "one"
    r = hivelog(
        "export", "--format", "hive", *old, "--session", "s2", "-o", str(one), "--db", db_url
    )
    assert r.returncode == 0
    assert [p.name for p in (one / "agents/queens/queen_growth/sessions").iterdir()] == ["s2"]


async def test_head_layout_import_and_default_export(
    tree: Tree, db_url: str, tmp_path: Path
) -> None:
    """hive 54fd8db keeps DMs in `queens/` and colony sessions in `colonies/<c>/queens/`:
    both are imported, and `export --format hive` writes that layout by default."""
    (tree.home / "agents" / "queens").rename(tree.home / "queens")
    moved = sorted((tree.home / "queens").iterdir())[0]
    target = tree.home / "colonies" / "research" / "queens"
    target.mkdir(parents=True)
    moved.rename(target / moved.name)
    (tree.home / "agents").rmdir()
    code, summary = run_json("import-hive", str(tree.home), "--db", db_url)
    assert summary["sessions_found"] == summary["sessions_imported"] == 12
    assert summary["events_imported"] == tree.good_events
    store = await open_store(db_url)
    await store.append(
        "colony_s",
        [
            new_event("session_created", {"session_id": "colony_s"}, timestamp=T0),
            new_event(
                "worker_colony_loaded",
                {"colony_id": "research", "colony_name": "research", "agent_path": "/a/r"},
                timestamp=T0,
                colony_id="research",
            ),
        ],
    )
    await store.close()
    out = tmp_path / "head"
    code, exported = run_json("export", "--format", "hive", "-o", str(out), "--db", db_url)
    assert code == 0 and exported["layout"] == "54fd8db" and exported["sessions"] == 13
    assert (
        out / "colonies/research/queens/queen_technology/sessions/colony_s/events.jsonl"
    ).is_file()
    assert not (out / "agents").exists()
    for sid, (queen, count) in tree.sessions.items():
        _events, total, _ = read_events_tail(
            out / "queens" / queen / "sessions" / sid / "events.jsonl", 2000
        )
        assert total == count
    second = f"sqlite:///{tmp_path / 'second.db'}"
    code, again = run_json("import-hive", str(out), "--db", second)
    assert again["sessions_imported"] == 13
    assert await catalogue_sessions(second) == await catalogue_sessions(db_url)
