"""Shared fixtures: throwaway database files (ports and servers: tests/support/server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hivelog.db'}"
