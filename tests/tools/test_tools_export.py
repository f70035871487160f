"""`hivelog export --format jsonl`: the full log, byte-for-byte payloads, as the real command."""

from __future__ import annotations

from pathlib import Path

import orjson

from eventstore import NewEvent, open_store
from tests.support.tools_support import hive_event, hivelog, jsonl


async def seed(db_url: str) -> list[tuple[str, bytes]]:
    store = await open_store(db_url)
    await store.append("session_a", [hive_event("session_created", {"n": 1})])
    await store.append("$system", [NewEvent("note", {"k": [1, 2]}, metadata={"m": True})])
    await store.append("gone", [hive_event("x", {})])
    await store.append("session_a", [hive_event("client_input_received", {"content": "é ✓"})])
    await store.delete_stream("gone")
    events = await store.read_all(0, 100)
    await store.close()
    return [(e.event_id, e.data_json) for e in events]


async def test_jsonl_to_stdout_is_the_whole_log(db_url: str) -> None:
    stored = await seed(db_url)
    r = hivelog("export", "--db", db_url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    events = [orjson.loads(line) for line in lines]
    assert [(e["position"], e["stream_id"], e["version"]) for e in events] == [
        (1, "session_a", 1),
        (2, "$system", 1),
        (4, "session_a", 2),
    ]
    assert [e["event_id"] for e in events] == [i for i, _ in stored]
    assert events[1]["metadata"] == {"m": True}
    # the stored payload bytes appear untouched in each line
    for line, (_, data_json) in zip(lines, stored, strict=True):
        assert line.endswith(b',"data":' + data_json + b"}")


async def test_jsonl_to_file_and_one_session(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    out = tmp_path / "out.jsonl"
    r = hivelog("export", "--db", db_url, "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout) == {
        "format": "jsonl",
        "events": 3,
        "head_position": 4,
        "output": str(out),
    }
    assert len(jsonl(out.read_bytes())) == 3
    assert not (tmp_path / "out.jsonl.partial").exists()
    r = hivelog("export", "--db", db_url, "--session", "session_a")
    assert [e["version"] for e in jsonl(r.stdout)] == [1, 2]


async def test_export_errors(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    r = hivelog("export", "--db", db_url, "--session", "gone")
    assert r.returncode == 1 and b"no session 'gone'" in r.stderr
    assert hivelog("export", "--db", db_url, "--format", "hive").returncode == 2
    assert hivelog("export", "--db", db_url, "--json").returncode == 2
    assert hivelog("export", "--db", db_url, "--format", "xml").returncode == 2
    missing = hivelog("export", "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert missing.returncode == 2 and not (tmp_path / "nope.db").exists()
