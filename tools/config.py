"""Settings shared by every `hivelog` subcommand: where the log lives."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "sqlite:///./data/hivelog.db"


def db_url(cli_value: str | None) -> str:
    """--db, else $HIVELOG_DB, else the embedded default; a SQLite parent folder is created."""
    url = cli_value or os.environ.get("HIVELOG_DB") or DEFAULT_DB
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return url
