"""`hivelog export --format hive`: sessions as hive's own folders."""

from __future__ import annotations

from pathlib import Path

from eventstore import EventStore

from .logio import UsageError


async def export_hive(store: EventStore, home: Path, session: str | None) -> dict[str, object]:
    """Placeholder until the session projections are in this build."""
    raise UsageError("export --format hive: the session projections are not in this build yet")
