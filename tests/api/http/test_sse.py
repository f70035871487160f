"""Live SSE against a real server on a real SQLite file.

Events are appended from this process (a second store on the same file), so the
server learns of them through the store's poll: every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from eventstore import NewEvent
from tests.support.server import Server, running_server, start_server
from tests.support.sse_client import SSEMessage, envelope, events, read_sse, store_at, types_of

WAIT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sse")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp), "HIVELOG_SSE_KEEPALIVE": "0.3"}
    with running_server(url, tmp, env=env) as srv:
        srv.db_url = url  # type: ignore[attr-defined]
        yield srv


def db(server: Server) -> str:
    return server.db_url  # type: ignore[attr-defined,no-any-return]


async def collect(
    client: httpx.AsyncClient, url: str, count: int, headers: dict[str, str] | None = None
) -> list[SSEMessage]:
    async with client.stream("GET", url, headers=headers or {}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        return await asyncio.wait_for(read_sse(r, count), WAIT)


async def test_resume_after_forced_disconnect_delivers_each_event_once(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append("resume-1", events("custom", 10))
        url = f"{server.base_url}/api/sessions/resume-1/events?types=*&after=0"
        async with httpx.AsyncClient(timeout=WAIT) as client:
            async with client.stream("GET", url) as r:
                first = await asyncio.wait_for(read_sse(r, 4), WAIT)
            # Forced disconnect after 4; more events arrive while the client is away,
            # interleaved with another session's.
            await store.append("resume-1", events("custom", 10, start=10))
            await store.append("resume-other", events("custom", 3))
            last = str(first[-1].id)
            second = await collect(client, url, 16, {"Last-Event-ID": last})
            # And once more from the middle of the live part.
            await store.append("resume-1", events("custom", 5, start=20))
            third = await collect(client, url, 5, {"Last-Event-ID": str(second[-1].id)})
    got = [json.loads(m.data or "")["data"]["i"] for m in first + second + third]
    assert got == list(range(25))
    ids = [m.id for m in first + second + third if m.id is not None]
    assert len(ids) == 25  # every message carries its id
    assert ids == sorted(set(ids))
    body = json.loads(second[0].data or "")
    assert body["position"] == second[0].id and body["version"] == 5
    assert list(body)[2:] == [*envelope("x", {}), "seq"] and body["seq"] == 5


async def test_default_types_filter_and_explicit_types(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append(
            "types-1",
            events("llm_text_delta", 1) + events("not_default", 1) + events("trigger_fired", 1),
        )
    base = f"{server.base_url}/api/sessions/types-1/events?after=0"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        assert types_of(await collect(client, base, 2)) == ["llm_text_delta", "trigger_fired"]
        only = await collect(client, base + "&types=not_default,unknown_type", 1)
        assert types_of(only) == ["not_default"]


async def test_no_cursor_replays_like_hive_then_goes_live(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append(
            "replay-1", events("client_output_delta", 2) + events("llm_text_delta", 2)
        )
        url = f"{server.base_url}/api/sessions/replay-1/events"
        async with httpx.AsyncClient(timeout=WAIT) as client, client.stream("GET", url) as r:
            replayed = await asyncio.wait_for(read_sse(r, 2), WAIT)
            await store.append("replay-1", events("llm_text_delta", 1, start=7))
            live = await asyncio.wait_for(read_sse(r, 1), WAIT)
    assert types_of(replayed) == ["client_output_delta"] * 2
    assert json.loads(live[0].data or "")["data"]["i"] == 7


async def test_keepalive_comments(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append("keepalive-1", events("custom", 1))
    url = f"{server.base_url}/api/sessions/keepalive-1/events"
    async with httpx.AsyncClient(timeout=WAIT) as client, client.stream("GET", url) as r:
        got = await asyncio.wait_for(read_sse(r, 2, keep_comments=True), WAIT)
    assert all(m.comments == ["keepalive"] and m.data is None for m in got)


async def test_two_hundred_clients_on_one_stream_all_get_every_event(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append("crowd-1", events("custom", 1))
        url = f"{server.base_url}/api/sessions/crowd-1/events?types=*&after=0"
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(timeout=WAIT, limits=limits) as client:
            ready = asyncio.Semaphore(0)

            async def one() -> list[int]:
                async with client.stream("GET", url) as r:
                    first = await read_sse(r, 1)
                    ready.release()
                    rest = await read_sse(r, 30)
                return [json.loads(m.data or "")["data"]["i"] for m in first + rest]

            tasks = [asyncio.create_task(one()) for _ in range(200)]
            for _ in range(200):
                await asyncio.wait_for(ready.acquire(), WAIT)
            for i in range(3):
                await store.append("crowd-1", events("custom", 10, start=1 + 10 * i))
            results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert all(r == list(range(31)) for r in results)


async def test_global_stream_carries_session_id_and_hides_system_streams(server: Server) -> None:
    async with store_at(db(server)) as store:
        head = await store.head_position()
        await store.append("global-a", events("custom", 1))
        await store.append("$internal", events("custom", 1))
        await store.append("global-b", events("custom", 1))
    url = f"{server.base_url}/api/events?types=*&after={head}"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        got = await collect(client, url, 2)
    bodies = [json.loads(m.data or "") for m in got]
    assert [b["session_id"] for b in bodies] == ["global-a", "global-b"]
    assert [m.id for m in got] == [head + 1, head + 3]


async def test_unknown_session_and_bad_cursor(server: Server) -> None:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        r = await client.get(f"{server.base_url}/api/sessions/nope-1/events")
        assert r.status_code == 404 and "error" in r.json()
        r = await client.get(f"{server.base_url}/api/events", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"]


def test_slow_client_is_disconnected_and_resumes(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("slow")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp), "HIVELOG_SSE_QUEUE": "8"}
    big = "x" * 64 * 1024
    total = 200

    async def append(n: int, start: int) -> None:
        async with store_at(url) as store:
            for i in range(start, start + n, 20):
                batch = [
                    NewEvent("custom", envelope("custom", {"i": j, "pad": big}))
                    for j in range(i, i + 20)
                ]
                await store.append("slow-1", batch)

    with running_server(url, tmp, env=env) as srv:
        asyncio.run(_append_one(url))
        port = int(srv.base_url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /api/sessions/slow-1/events?types=*&after=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        # The client reads nothing while 200 events of 64 KiB are appended.
        asyncio.run(append(total, 1))
        sock.settimeout(WAIT)
        raw = b""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            raw += chunk
        sock.close()
        assert time.monotonic() < deadline, "the server never disconnected the slow client"
        ids = [int(line[4:]) for line in raw.split(b"\n") if line.startswith(b"id: ")]
        assert 1 <= len(ids) < total + 1, len(ids)
        assert ids == list(range(1, len(ids) + 1))  # a gapless prefix
        # It resumes from its last id and gets the rest, once each.
        with (
            httpx.Client(timeout=WAIT) as client,
            client.stream(
                "GET",
                f"{srv.base_url}/api/sessions/slow-1/events?types=*",
                headers={"Last-Event-ID": str(ids[-1])},
            ) as r,
        ):
            rest: list[int] = []
            for line in r.iter_lines():
                if line.startswith("id: "):
                    rest.append(int(line[4:]))
                    if rest[-1] == total + 1:
                        break
        assert ids + rest == list(range(1, total + 2))


async def _append_one(url: str) -> None:
    async with store_at(url) as store:
        await store.append("slow-1", events("custom", 1))


def test_shutdown_ends_open_streams(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("shutdown")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    srv = start_server(url, tmp, env={"HIVELOG_AGENTS_ROOTS": str(tmp)})
    try:
        with (
            httpx.Client(timeout=WAIT) as client,
            client.stream("GET", f"{srv.base_url}/api/events?types=*") as r,
        ):
            assert r.status_code == 200
            srv.process.send_signal(signal.SIGTERM)
            assert list(r.iter_lines()) is not None  # the stream ends
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught;
        # with the stream still blocking shutdown, this wait would time out.
        assert srv.process.wait(timeout=WAIT) in (0, -signal.SIGTERM)
    finally:
        srv.stop()
