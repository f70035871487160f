"""SSE edges found in review: an erased session's stream ends, a cursor past the log's head
is a 400, events committed while a no-cursor connect replays are sent, and a fractional
HIVELOG_SSE_QUEUE still gives a bounded queue. Real servers on real SQLite files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.core.settings import Settings
from api.http.sse import hub_from_env
from eventstore import EventStore, TailPage
from tests.support.server import Server, running_server, serve_in_process
from tests.support.sse_client import SSEMessage, events, read_sse, store_at

WAIT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("review_sse")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp), "HIVELOG_SSE_KEEPALIVE": "0.2"}
    with running_server(url, tmp, env=env) as srv:
        srv.db_url = url  # type: ignore[attr-defined]
        yield srv


def db(server: Server) -> str:
    return server.db_url  # type: ignore[attr-defined,no-any-return]


async def test_an_erased_sessions_live_stream_ends(server: Server) -> None:
    """Before: the stream stayed open on keepalives forever, its client registered."""
    async with store_at(db(server)) as store:
        await store.append("erase-live", events("custom", 2))
        url = f"{server.base_url}/api/sessions/erase-live/events?types=*&after=0"
        async with httpx.AsyncClient(timeout=WAIT) as client, client.stream("GET", url) as r:
            got = await asyncio.wait_for(read_sse(r, 2), WAIT)
            await store.delete_stream("erase-live")
            rest = await asyncio.wait_for(read_sse(r, 10**6, keep_comments=True), WAIT)
    assert [m.id for m in got] == [1, 2]
    assert all(m.data is None for m in rest)  # keepalives at most, then the end


@pytest.mark.parametrize("header", [True, False])
async def test_a_cursor_past_the_head_is_a_400(server: Server, header: bool) -> None:
    """Before: a 200 that skipped every event up to the bogus position, silently."""
    async with store_at(db(server)) as store:
        await store.append("past-head", events("custom", 1))
        head = await store.head_position()
    bogus = str(head + 1000)
    url = f"{server.base_url}/api/sessions/past-head/events?types=*"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        async with client.stream(
            "GET",
            url if header else f"{url}&after={bogus}",
            headers={"Last-Event-ID": bogus} if header else {},
        ) as r:
            status = r.status_code  # the body of a wrong 200 never ends: not read
            body = (await r.aread()) if status == 400 else b"{}"
        at_head = await collect_one(client, f"{url}&after={head - 1}")
    assert status == 400
    assert b"past the newest position" in body
    assert at_head.id == head  # a real cursor still resumes


async def collect_one(client: httpx.AsyncClient, url: str) -> SSEMessage:
    async with client.stream("GET", url) as r:
        assert r.status_code == 200
        return (await asyncio.wait_for(read_sse(r, 1), WAIT))[0]


async def test_events_committed_during_the_replay_are_sent(tmp_path: Path) -> None:
    """A no-cursor connect reads the head, then the replay's tail: an event committed in
    between (here: inside the tail read) is live. Before: it was neither replayed (not a
    replay type) nor sent, as the cursor jumped to the tail's end."""
    url = f"sqlite:///{tmp_path / 'hivelog.db'}"
    async with store_at(url) as seed:
        await seed.append("replay-race", events("client_output_delta", 1))
    app = create_app(Settings(db_url=url, agents_roots=(tmp_path,)))
    async with serve_in_process(app) as base:
        store: EventStore = app.state.parts.store
        real_tail = store.tail

        async def tail(stream_id: str, n: int) -> TailPage:
            store.tail = real_tail  # type: ignore[method-assign]
            await store.append(stream_id, events("llm_text_delta", 1, start=1))
            return await real_tail(stream_id, n)

        store.tail = tail  # type: ignore[method-assign]
        got: list[tuple[str, int | None]] = []
        stream_url = f"{base}/api/sessions/replay-race/events"
        async with httpx.AsyncClient(timeout=WAIT) as client, client.stream("GET", stream_url) as r:
            while ("llm_text_delta", 2) not in got:
                for m in await asyncio.wait_for(read_sse(r, 1), WAIT):
                    body = json.loads(m.data or "")
                    got.append((body["type"], body["data"].get("i")))
                if len(got) == 2:  # the replay is out: a marker after everything else
                    await store.append("replay-race", events("llm_text_delta", 1, start=2))
    assert got == [
        ("session_snapshot", None),
        ("client_output_delta", 0),
        ("llm_text_delta", 1),
        ("llm_text_delta", 2),
    ]


@pytest.mark.parametrize("value", ["0.5", "0.01"])
def test_a_fractional_queue_size_is_still_bounded(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Before: int(0.5) == 0, and asyncio.Queue(0) is unbounded."""
    monkeypatch.setenv("HIVELOG_SSE_QUEUE", value)
    hub = hub_from_env(store=None)  # type: ignore[arg-type]  # only the settings are read
    assert hub.queue_size == 1
    assert asyncio.Queue(hub.queue_size).maxsize == 1
