"""`hivelog import-hive` applies the same bounds as the server: trigger configs through the
one validator, agent files read safely; every refusal is a named problem, nothing appended."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson

from eventstore import open_store
from tests.support.hive_tree import hive_line
from tests.support.tools_support import hivelog

AT = dt.datetime(2026, 3, 1, 12, 0)
SESSION = "session_20260301_120000_abcd1234"
SECRET = "TOP-SECRET-IMPORT-77a1"


def _tree(home: Path, outside: Path) -> None:
    folder = home / "agents" / "queens" / "queen_technology" / "sessions" / SESSION
    folder.mkdir(parents=True)
    bad_timer = {"trigger_id": "t", "trigger_type": "timer", "trigger_config": {}}
    lines = [
        hive_line("queen_phase_changed", {"phase": "independent"}, AT),
        hive_line(
            "trigger_activated",
            {**bad_timer, "trigger_config": {"interval_minutes": 1e305}},
            AT,
        ),
        hive_line(
            "trigger_updated",
            {
                **bad_timer,
                "trigger_config": {"interval_minutes": 5, "misfire_grace_seconds": 1e308},
            },
            AT,
        ),
        hive_line("custom", {"deep": json.loads("[" * 300 + "]" * 300)}, AT),
        hive_line("queen_phase_changed", {"phase": "working"}, AT),
    ]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    colonies = home / "colonies"
    bad = colonies / "bad"
    bad.mkdir(parents=True)
    config = {"interval_minutes": 2**63}
    (bad / "triggers.json").write_text(
        json.dumps([{"id": "tick", "trigger_type": "timer", "trigger_config": config}])
    )
    (bad / "metadata.json").write_text("{}")
    linked = colonies / "linked"
    linked.mkdir()
    (outside / "secret.json").write_text(json.dumps({"colony_name": SECRET}))
    (linked / "metadata.json").symlink_to(outside / "secret.json")
    deep = colonies / "deep"
    deep.mkdir()
    (deep / "metadata.json").write_text("[" * 5000 + "]" * 5000)
    good = colonies / "good"
    good.mkdir()
    (good / "metadata.json").write_text(json.dumps({"colony_name": "good"}))


async def _events(db_url: str) -> list[Any]:
    store = await open_store(db_url)
    try:
        return list(await store.read_all(after_position=0, limit=10_000))
    finally:
        await store.close()


async def test_import_refuses_what_the_server_refuses(tmp_path: Path, db_url: str) -> None:
    home, outside = tmp_path / "hive", tmp_path / "outside"
    outside.mkdir()
    _tree(home, outside)
    r = hivelog("import-hive", str(home), "--db", db_url, "--json", "--timezone", "UTC")
    assert r.returncode == 1, r.stderr.decode()
    summary = orjson.loads(r.stdout)
    problems = {(p["source"], p["line"]): p["reason"] for p in summary["problems"]}
    events = f"agents/queens/queen_technology/sessions/{SESSION}/events.jsonl"
    assert "interval_minutes" in problems[(events, 2)]
    assert "misfire_grace_seconds" in problems[(events, 3)]
    assert "cannot be stored as JSON" in problems[(events, 4)]
    assert "interval_minutes" in problems[("colonies/bad/triggers.json", None)]
    assert "symbolic link" in problems[("colonies/linked/metadata.json", None)]
    assert "nested deeper" in problems[("colonies/deep/metadata.json", None)]
    assert summary["events_imported"] == 2 and summary["lines_skipped"] == 3

    stored = await _events(db_url)
    assert [e.type for e in stored if e.stream_id == SESSION] == ["queen_phase_changed"] * 2
    colonies = [e.data["data"]["source"] for e in stored if e.type == "hive_colony_imported"]
    assert colonies == ["colonies/good"]  # bad triggers.json: the colony is not recorded
    assert SECRET not in json.dumps([e.data for e in stored])
