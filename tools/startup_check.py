"""The hash-chain look `hivelog serve` takes before it serves: the newest links.

Recomputing the whole chain costs a full read of the log (that is `hivelog audit`);
at startup the newest STARTUP_LINKS links are recomputed from the stored link before
them, and (SQLite) the last one is compared with the chain head the log records. A
break there means the file was edited behind the store: serving would append onto a
chain that no longer verifies, so `serve` refuses with the positions and exit 2.
"""

from __future__ import annotations

from pathlib import Path

from .audit import audit
from .audit_source import open_source
from .logio import UsageError

STARTUP_LINKS = 10_000


async def recent_chain_faults(url: str, links: int = STARTUP_LINKS) -> list[str]:
    """Chain faults among the newest `links` positions, as one line each (empty: sound)."""
    if url.startswith("sqlite:///") and not _exists(url[len("sqlite:///") :]):
        return []  # a new log: nothing to check yet
    try:
        source = await open_source(url)
    except UsageError:
        return []  # no hivelog log there yet (a new PostgreSQL schema); open creates it
    try:
        head = await source.head()
        if head == 0:
            return []
        report = await audit(source, from_position=max(1, head - links + 1), storage=False)
    finally:
        await source.close()
    return [
        f"position {f.position}: {f.message}"
        for f in report.faults
        if f.check in ("chain", "storage")
    ]


def _exists(path: str) -> bool:
    return Path(path).is_file()
