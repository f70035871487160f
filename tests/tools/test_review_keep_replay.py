"""`hivelog replay` for people never passes a producer's control characters to the
terminal (escape sequences retitle, clear or recolour it); `--json` and `export` keep
the stored bytes exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.support.server import running_server
from tests.support.tools_support import hivelog, jsonl, sqlite_path

EVIL = "é🦄 \x1b]0;OWNED\x07\x1b[2J\x1b[31mred\u202etxt.exe\x00\x9bz"


def test_replay_shows_control_characters_escaped(db_url: str, tmp_path: Path) -> None:
    with running_server(db_url, tmp_path, env={"HIVELOG_AGENTS_ROOTS": str(tmp_path)}) as srv:
        created = httpx.post(f"{srv.base_url}/api/sessions", json={"queen_id": "q"})
        session = created.json()["session_id"]
        event = {"type": "client_output_delta", "data": {"content": EVIL}, "stream_id": "w\x1bk"}
        posted = httpx.post(
            f"{srv.base_url}/api/sessions/{session}/events", json={"events": [event]}
        )
        assert posted.status_code == 201, posted.text

    human = hivelog("replay", session, "--db", db_url)
    assert human.returncode == 0, human.stderr.decode()
    line = human.stdout.decode().splitlines()[-1]
    for raw in ("\x1b", "\x07", "\x00", "\u202e", "\x9b"):
        assert raw not in human.stdout.decode()
    assert "[w\\x1bk]" in line and "\\x1b]0;OWNED\\x07" in line and "\\u202etxt.exe" in line
    assert "é🦄" in line

    as_json = hivelog("replay", session, "--db", db_url, "--json")
    exported = hivelog("export", "--db", db_url, "--session", session, "-o", str(tmp_path / "e"))
    assert exported.returncode == 0, exported.stderr.decode()
    with sqlite3.connect(sqlite_path(db_url)) as conn:
        (stored,) = conn.execute(
            "SELECT data FROM events ORDER BY position DESC LIMIT 1"
        ).fetchone()
    assert bytes(stored) in as_json.stdout.splitlines()[-1]
    assert bytes(stored) in (tmp_path / "e").read_bytes().splitlines()[-1]
    assert jsonl(as_json.stdout)[-1]["data"]["data"]["content"] == EVIL
