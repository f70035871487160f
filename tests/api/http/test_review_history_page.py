"""History page edges found in review, against a real server on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.http.history import DEFAULT_LIMIT
from tests.support.server import Server, running_server
from tests.support.sse_client import events, store_at


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("review_history")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    with running_server(url, tmp, env={"HIVELOG_AGENTS_ROOTS": str(tmp)}) as srv:
        srv.db_url = url  # type: ignore[attr-defined]
        yield srv


@pytest.mark.parametrize("before", [0, 1])
async def test_an_empty_before_page_says_newer_events_exist(server: Server, before: int) -> None:
    """Before: `before=0` said has_more_newer false (a falsy 0 read as "no cursor") while
    `before=1`, the same empty window, said true."""
    async with store_at(server.db_url) as store:  # type: ignore[attr-defined]
        await store.append(f"before-{before}", events("custom", 3))
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.get(
            f"/api/sessions/before-{before}/events/history", params={"before": before}
        )
    page = r.json()
    assert r.status_code == 200
    assert page["returned"] == 0 and page["total"] == 3
    assert page["has_more_newer"] is True and page["has_more_older"] is False


async def test_the_schema_states_the_served_default_limit(server: Server) -> None:
    """Before: the OpenAPI description said 2000, the route serves 500."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        spec = (await client.get("/openapi.json")).json()
        served = (await client.get("/api/sessions/nobody-here/events/history")).status_code
    op = spec["paths"]["/api/sessions/{session_id}/events/history"]["get"]
    (limit,) = [p for p in op["parameters"] if p["name"] == "limit"]
    text = limit.get("description") or limit["schema"]["description"]
    assert f"default {DEFAULT_LIMIT}" in text and "2000" not in text
    assert served == 404
