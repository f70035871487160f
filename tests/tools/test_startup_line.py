"""`hivelog serve` says what is running: one line on start, from a real process."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from api.core.announce import redact_url
from tests.support.server import start_server

LINE = re.compile(
    r"hivelog (?P<version>\S+) ready in (?P<ms>\d+) ms: store (?P<store>\S+), "
    r"(?P<sessions>\d+) sessions \((?P<live>\d+) live\), (?P<events>\d+) events restored "
    r"\((?P<folded>\d+) folded since the checkpoint\), token required: (?P<token>yes|no), "
    r"listening on (?P<address>\S+)"
)


def ready_lines(log: str) -> list[re.Match[str]]:
    return [m for m in (LINE.search(line) for line in log.splitlines()) if m]


def test_one_start_line_with_what_was_restored(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hivelog.db'}"
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp_path)}
    first = start_server(db, tmp_path, ["--log-level", "info"], env=env)
    try:
        for _ in range(2):
            assert httpx.post(f"{first.base_url}/api/sessions", json={}).status_code == 201
        head = httpx.get(f"{first.base_url}/api/health").json()["head_position"]
    finally:
        first.stop()
    (line,) = ready_lines(first.log())
    assert line["sessions"] == "0" and line["events"] == "0" and line["token"] == "no"

    second = start_server(db, tmp_path, ["--log-level", "info", "--token", "s3cret"], env=env)
    try:
        log = second.log()
    finally:
        os.kill(second.process.pid, signal.SIGTERM)
        assert second.process.wait(timeout=10) == 0  # a SIGTERM is a clean stop: exit 0
    (line,) = ready_lines(log)
    assert line["version"] == "0.1.0"
    assert line["store"] == db
    assert (line["sessions"], line["live"]) == ("2", "2")
    assert int(line["events"]) == head > 0
    assert line["token"] == "yes"
    assert line["address"] == second.base_url
    assert "s3cret" not in log
    assert any(ln.startswith("INFO") and LINE.search(ln) for ln in log.splitlines())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///./data/hivelog.db", "sqlite:///./data/hivelog.db"),
        ("postgresql://app:hunter2@db.local:5432/log", "postgresql://app:***@db.local:5432/log"),
        (
            "postgresql://app@/log?host=/tmp/pg&port=5432",
            "postgresql://app@/log?host=/tmp/pg&port=5432",
        ),
        (
            "postgresql://app@db/log?password=hunter2&schema=s",
            "postgresql://app@db/log?password=***&schema=s",
        ),
        ("postgres://:hunter2@db/log", "postgres://:***@db/log"),
    ],
)
def test_store_url_password_is_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hunter2" not in redact_url(url)
