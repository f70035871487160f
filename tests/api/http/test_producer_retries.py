"""Copies of one producer append sent at the same moment (a runtime retrying before its
first answer arrived), on real servers over SQLite and PostgreSQL: the events are stored
once, exactly one answer is 201 and every other copy 200 with the same body. Each copy
used to be answered 201 when the copies landed in one group commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.pg import pg_dsn  # noqa: F401
from tests.support.server import Server
from tests.support.sessions_support import BACKENDS, backend_server, client, head


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from backend_server(request, tmp_path_factory)


async def copies(server: Server, sid: str, body: object, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as c:
        return await asyncio.gather(
            *[c.post(f"/api/sessions/{sid}/events", json=body) for _ in range(n)]
        )


@pytest.mark.parametrize("n", [2, 8, 24])
def test_concurrent_copies_store_once_and_one_answer_is_201(server: Server, n: int) -> None:
    with client(server) as c:
        sid = c.post("/api/sessions").json()["session_id"]
        at = head(c)
        for attempt in range(3):
            body = {
                "events": [
                    {"type": "llm_turn_complete", "id": str(uuid.uuid4()), "data": {"a": attempt}},
                    {"type": "tool_call_started", "id": str(uuid.uuid4())},
                ]
            }
            answers = asyncio.run(copies(server, sid, body, n))
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200] * (n - 1) + [201], statuses
            assert len({r.content for r in answers}) == 1  # the same place for every copy
        assert head(c) == at + 6  # three appends of two events, each stored once
