"""Helpers shared by the history, SSE, middleware and metrics tests (no tests here).

Events are appended straight to the store as hive envelopes (stream id ==
session id), the way the sessions service stores them, so the read side can
be tested on its own against a real server on a real SQLite file.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from eventstore import EventStore, NewEvent, open_store


def envelope(type_: str, data: dict[str, Any], stream_id: str = "queen") -> dict[str, Any]:
    """hive's AgentEvent.to_dict() key order (contract §2.1)."""
    return {
        "type": type_,
        "stream_id": stream_id,
        "node_id": None,
        "execution_id": None,
        "data": data,
        "timestamp": "2026-11-24T12:00:00+00:00",
        "correlation_id": None,
        "colony_id": None,
        "run_id": None,
    }


def events(type_: str, n: int, start: int = 0, **extra: Any) -> list[NewEvent]:
    return [NewEvent(type_, envelope(type_, {"i": start + i, **extra})) for i in range(n)]


@contextlib.asynccontextmanager
async def store_at(db_url: str) -> AsyncIterator[EventStore]:
    store = await open_store(db_url)
    try:
        yield store
    finally:
        await store.close()


@dataclass
class SSEMessage:
    id: int | None
    data: str | None
    comments: list[str] = field(default_factory=list)


async def read_sse(
    response: httpx.Response, count: int, *, keep_comments: bool = False
) -> list[SSEMessage]:
    """Parse up to `count` messages (or comments, when asked) from a streaming response;
    may be called again on the same response to read on."""
    lines: AsyncIterator[str] | None = getattr(response, "_sse_lines", None)
    if lines is None:
        lines = response.aiter_lines()
        response._sse_lines = lines  # type: ignore[attr-defined]
    out: list[SSEMessage] = []
    current = SSEMessage(None, None)
    async for line in lines:
        if line == "":
            if current.data is not None or (keep_comments and current.comments):
                out.append(current)
                if len(out) >= count:
                    return out
            current = SSEMessage(None, None)
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            current.id = int(line[3:].strip())
        elif line.startswith("data:"):
            current.data = line[5:].lstrip(" ")
    return out


def types_of(messages: Sequence[SSEMessage]) -> list[str]:
    import json

    return [json.loads(m.data)["type"] for m in messages if m.data is not None]
