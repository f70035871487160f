"""A full disk under a real `hivelog serve`: a real, small tmpfs mounted for the test.

Writes answer 503 with Retry-After and a JSON error, the incident is logged once
(not per request), /api/health shows the store degraded, writes work again once
space is freed, and every acknowledged write is there after a restart. Needs root
(mount); skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import running_server

SIZE = "8m"


@contextlib.contextmanager
def small_filesystem(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the filesystem refuses even 512 more bytes (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_answers_503_once_logged_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small") as mnt:
        db_url = f"sqlite:///{mnt / 'hivelog.db'}"
        acknowledged: list[str] = []
        with running_server(db_url, tmp_path) as server:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                for _ in range(5):
                    r = client.post("/api/sessions", json={})
                    assert r.status_code == 201
                    acknowledged.append(r.json()["session_id"])
                fill(mnt / "filler")
                refused = []
                for _ in range(3000):  # bounded; the WAL's free pages go first
                    r = client.post("/api/sessions", json={})
                    if r.status_code == 201:
                        acknowledged.append(r.json()["session_id"])
                        continue
                    refused.append(r)
                    if len(refused) >= 20:
                        break
                assert len(refused) == 20, "the disk never filled up"
                for r in refused:
                    assert r.status_code == 503
                    assert r.headers["retry-after"] == "5"
                    assert r.headers["content-type"].startswith("application/json")
                    assert "Storage unavailable" in r.json()["error"]
                health = client.get("/api/health").json()
                assert health["components"]["store"]["status"] == "degraded"
                assert "writes refused" in health["components"]["store"]["reason"]
            log = server.log()
        assert server.process.returncode == 0  # a clean stop, even with the disk full
        assert log.count("store unavailable") == 1, log  # once per incident, not per request
        assert "Traceback" not in log
        # still full: the service starts and serves reads; writes answer 503
        with running_server(db_url, tmp_path) as server:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                assert client.get(f"/api/sessions/{acknowledged[0]}").status_code == 200
                assert client.post("/api/sessions", json={}).status_code == 503
                (mnt / "filler").unlink()
                r = client.post("/api/sessions", json={})
                assert r.status_code == 201
                acknowledged.append(r.json()["session_id"])
                health = client.get("/api/health").json()
                assert health["components"]["store"]["status"] == "ok"
            log = server.log()
        assert "store available again" in log
        assert "Traceback" not in log
        with running_server(db_url, tmp_path) as server:
            for sid in acknowledged:
                r = httpx.get(f"{server.base_url}/api/sessions/{sid}")
                assert r.status_code == 200, sid
