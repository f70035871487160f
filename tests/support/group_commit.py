"""Shared by the two group-commit test modules (SQLite and PostgreSQL): the audit's
chain verdict on a log, the outcomes of concurrent appends (errors included), and
one batch of eight appends that each must get the outcome it would get alone."""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore import (
    AppendResult,
    DuplicateEventId,
    EventStore,
    ExpectedState,
    NewEvent,
    StreamDeleted,
    WrongExpectedVersion,
)
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


async def eight_appends_in_one_batch(
    store: EventStore, commits: list[int], expected_commits: list[int]
) -> None:
    """Eight appends sent at once (a write, a conflict, a write at the new head, a retry,
    an id clash, a deleted stream, and two new streams): each gets its own outcome.
    `commits` is what the store's commit hook recorded; `expected_commits` what it
    must record for the batch (backends count jobs or written appends)."""
    await store.append("kept", [NewEvent("a", {"i": 0}, event_id="id-kept")])
    await store.append("elsewhere", [NewEvent("a", {"i": 0}, event_id="id-else")])
    await store.append("gone", [NewEvent("a", {"i": 0})])
    await store.delete_stream("gone")
    commits.clear()
    results = await outcomes(
        [
            store.append("s", [NewEvent("a", {"k": 1}), NewEvent("b", None)], 0),
            store.append("s", [NewEvent("c", {"k": 2})], 0),  # conflict: s is at 2 now
            store.append("s", [NewEvent("d", {"k": 3})], 2),
            store.append("kept", [NewEvent("a", {"i": 0}, event_id="id-kept")], 0),  # retry
            store.append("t", [NewEvent("a", {"i": 0}, event_id="id-else")]),  # clash
            store.append("gone", [NewEvent("a", {"i": 1})]),
            store.append("t", [NewEvent("e", {"k": 4}, metadata={"m": 1})], 0),
            store.append("new", [NewEvent("f", {"k": 5})], ExpectedState.NO_STREAM),
        ]
    )
    assert commits == expected_commits
    first, conflict, third, retry, clash, deleted, t_ok, new_ok = results
    assert first == AppendResult("s", 1, 2, 5)
    assert isinstance(conflict, WrongExpectedVersion)
    assert third == AppendResult("s", 3, 3, 6)
    assert retry == AppendResult("kept", 1, 1, 1)
    assert isinstance(clash, DuplicateEventId)
    assert isinstance(deleted, StreamDeleted)
    assert t_ok == AppendResult("t", 1, 1, 7)
    assert new_ok == AppendResult("new", 1, 1, 8)
    events = await store.read_all(0, 100)
    assert [e.position for e in events] == [1, 2, 4, 5, 6, 7, 8]  # 3 was erased
    info = await store.stream_info("s")
    assert info is not None and (info.head_version, info.head_position) == (3, 6)
