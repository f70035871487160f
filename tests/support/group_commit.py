"""Shared by the two group-commit test modules (SQLite and PostgreSQL): the audit's
chain verdict on a log, and the outcomes of concurrent appends, errors included."""

from __future__ import annotations

import asyncio
from typing import Any

from tools.audit import audit
from tools.audit_source import open_source


async def chain_faults(url: str) -> list[dict[str, Any]]:
    """The audit's chain check (payload shape is not these modules' concern)."""
    source = await open_source(url)
    try:
        report = (await audit(source)).to_dict()
    finally:
        await source.close()
    assert report["stats"]["chain_links"] > 0
    return [f for f in report["faults"] if f["check"] == "chain"]


async def outcomes(coros: list[Any]) -> list[Any]:
    """Each append's result or exception, in the order given."""
    return list(await asyncio.gather(*coros, return_exceptions=True))
