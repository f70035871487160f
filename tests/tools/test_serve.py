"""`hivelog serve` end to end: a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.server import running_server


def test_health_on_real_server(db_url: str, tmp_path: Path) -> None:
    with running_server(db_url, tmp_path) as server:
        r = httpx.get(f"{server.base_url}/api/health")
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        assert r.headers["content-type"].startswith("application/json")
    assert server.process.returncode is not None


def test_cli_usage_error_exit_code() -> None:
    r = subprocess.run([sys.executable, "-m", "tools", "no-such"], capture_output=True)
    assert r.returncode == 2


def test_default_db_folder_is_created(tmp_path: Path) -> None:
    from tools.config import db_url

    old = Path.cwd()
    try:
        import os

        os.chdir(tmp_path)
        assert db_url(None).startswith("sqlite:///")
        assert (tmp_path / "data").is_dir()
    finally:
        os.chdir(old)
