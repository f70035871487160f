"""Shared fixtures: throwaway database files (ports and servers: tests/support/server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server
from tests.support.sessions_support import make_env


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hivelog.db'}"


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server fixture: one real `hivelog serve` per test module, on a fresh
    SQLite file with its own agents root and HIVE_HOME, stopped by its pid at the end."""
    env = make_env(tmp_path_factory.mktemp("served"))
    server = env.start()
    try:
        yield server
    finally:
        server.stop()
