"""Helpers for session tests: real agent folders in tmp dirs and a configured server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.pg import fresh_url
from tests.support.server import Server, start_server


def make_colony(
    root: Path,
    name: str,
    *,
    worker: str = "researcher",
    triggers: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """A colony folder as hive's fork writes it (worker json, triggers.json, metadata.json)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{worker}.json").write_text(
        json.dumps(
            {
                "name": worker,
                "description": f"{name} worker",
                "goal": {"description": f"goal of {name}", "success_criteria": ["done"]},
                "tools": ["web_search", "read_file"],
            }
        )
    )
    if triggers is not None:
        (folder / "triggers.json").write_text(json.dumps(triggers, indent=2) + "\n")
    (folder / "metadata.json").write_text(
        json.dumps(metadata or {"colony_name": name, "queen_name": "queen_growth"})
    )
    return folder


TIMER = {
    "id": "daily",
    "name": "Daily digest",
    "trigger_type": "timer",
    "trigger_config": {"cron": "0 9 * * *"},
    "task": "send the digest",
}


@dataclass
class Env:
    tmp: Path
    db_url: str
    root: Path
    hive_home: Path

    def args(self) -> list[str]:
        return ["--agents-root", str(self.root)]

    def env(self) -> dict[str, str]:
        return {"HIVE_HOME": str(self.hive_home), "HIVELOG_AGENTS_ROOTS": ""}

    def start(self) -> Server:
        return start_server(self.db_url, self.tmp, self.args(), self.env())


def make_env(tmp: Path) -> Env:
    root = tmp / "colonies"
    root.mkdir()
    home = tmp / "hive"
    home.mkdir()
    return Env(tmp, f"sqlite:///{tmp / 'hivelog.db'}", root.resolve(), home)


@contextmanager
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def head(c: httpx.Client) -> int:
    position: int = c.get("/api/health").json()["head_position"]
    return position


# One real `hivelog serve` per backend: `params=BACKENDS` on a module fixture that
# yields from `backend_server` (PostgreSQL runs where the `pg_dsn` fixture has a server).
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def backend_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server on the backend `request.param` names, stopped by its pid at the end."""
    tmp = tmp_path_factory.mktemp("served")
    root = (tmp / "colonies").resolve()
    root.mkdir()
    (tmp / "hive").mkdir()
    if request.param == "postgres":
        url = fresh_url(request.getfixturevalue("pg_dsn"))
    else:
        url = f"sqlite:///{tmp / 'hivelog.db'}"
    server = Env(tmp, url, root, tmp / "hive").start()
    try:
        yield server
    finally:
        server.stop()
