"""`hivelog replay --rebuild`: fold the log from position 0 and compare with checkpoints."""

from __future__ import annotations

from .console import EXIT_USAGE, error


async def rebuild(url: str, as_json: bool, *, save: bool) -> int:
    """Placeholder until the projections (fold_all, checkpoints) are in this build."""
    error("replay --rebuild: the projections are not in this build yet")
    return EXIT_USAGE
