"""Conditional GET on events/history over real HTTP: a strong ETag from the stream
head and the query; If-None-Match -> 304 with no body and the validator still sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.core.settings import Settings
from api.http.history import HistoryQuery, etag, matches
from tests.support.server import Server, running_server, serve_in_process
from tests.support.sse_client import events, store_at


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("history-etag")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    with running_server(url, tmp, env={"HIVELOG_AGENTS_ROOTS": str(tmp)}) as srv:
        srv.db_url = url  # type: ignore[attr-defined]
        yield srv


def get(server: Server, sid: str, inm: str | None = None, **params: Any) -> httpx.Response:
    headers = {"If-None-Match": inm} if inm else {}
    return httpx.get(
        f"{server.base_url}/api/sessions/{sid}/events/history", params=params, headers=headers
    )


async def test_304_until_a_new_event_changes_the_tag(server: Server) -> None:
    async with store_at(server.db_url) as store:  # type: ignore[attr-defined]
        await store.append("etag-1", events("client_output_delta", 5))
    first = get(server, "etag-1", limit=3)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    again = get(server, "etag-1", tag, limit=3)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    assert get(server, "etag-1", f'"nope", W/{tag}', limit=3).status_code == 304
    assert get(server, "etag-1", "*", limit=3).status_code == 304
    assert get(server, "etag-1", '"stale"', limit=3).status_code == 200

    async with store_at(server.db_url) as store:  # type: ignore[attr-defined]
        await store.append("etag-1", events("client_output_delta", 1))
    after = get(server, "etag-1", tag, limit=3)
    assert after.status_code == 200
    assert after.headers["etag"] != tag
    assert after.json()["total"] == 6
    assert get(server, "etag-1", after.headers["etag"], limit=3).status_code == 304


async def test_each_query_has_its_own_tag(server: Server) -> None:
    async with store_at(server.db_url) as store:  # type: ignore[attr-defined]
        await store.append("etag-2", events("a_type", 4))
        await store.append("etag-2", events("b_type", 2))
    tags = {
        get(server, "etag-2", limit=3).headers["etag"],
        get(server, "etag-2", limit=4).headers["etag"],
        get(server, "etag-2", limit=3, types="a_type").headers["etag"],
        get(server, "etag-2", limit=3, before_offset=4).headers["etag"],
        get(server, "etag-2", limit=3, after=0).headers["etag"],
    }
    assert len(tags) == 5
    # Each path honours its own tag, and not another query's.
    for params in ({"types": "a_type"}, {"before_offset": 4}, {"after": 0}):
        tag = get(server, "etag-2", limit=3, **params).headers["etag"]
        assert get(server, "etag-2", tag, limit=3, **params).status_code == 304
        assert get(server, "etag-2", tag, limit=4, **params).status_code == 200
    # Same query spelled differently (type order): same tag.
    ab = get(server, "etag-2", types="a_type,b_type").headers["etag"]
    assert get(server, "etag-2", ab, types="b_type,a_type").status_code == 304


async def test_unknown_session_is_404_even_with_a_tag(server: Server) -> None:
    r = get(server, "etag-none", '"h0.0.x"')
    assert r.status_code == 404


@given(
    st.integers(0, 10**9),
    st.integers(0, 10**12),
    st.integers(1, 10_000),
    st.lists(st.sampled_from(["a", "b", "c"]), unique=True),
)
def test_tag_is_a_function_of_head_and_query(v: int, p: int, limit: int, types: list[str]) -> None:
    q = HistoryQuery(limit, None, None, tuple(types))
    tag = etag(v, p, q)
    assert tag == etag(v, p, HistoryQuery(limit, None, None, tuple(reversed(types))))
    assert tag != etag(v + 1, p + 1, q)
    assert tag != etag(v, p, q, cut=1)  # an archive moves the cut, not the head
    assert tag != etag(v, p, HistoryQuery(limit + 1, None, None, tuple(types)))
    assert matches(tag, tag) and matches(f"W/{tag}", tag) and not matches("", tag)


async def test_one_store_read_per_request(tmp_path: Path) -> None:
    """The plain tail is one read: the page and the stream row (its archive cut) come from
    one statement; an unchanged revalidation reads the head row only."""
    url = f"sqlite:///{tmp_path / 'hivelog.db'}"
    async with store_at(url) as store:
        await store.append("etag-3", events("client_output_delta", 30))
    app = create_app(Settings(db_url=url, agents_roots=(tmp_path,)))
    async with serve_in_process(app) as base_url:
        store = app.state.parts.store
        calls: list[str] = []
        for name in (
            "tail_array",
            "tail_json",
            "tail",
            "stream_info",
            "read",
            "read_positions",
            "read_all",
        ):
            original = getattr(store, name)

            def counting(*a: Any, _name: str = name, _f: Any = original, **k: Any) -> Any:
                calls.append(_name)
                return _f(*a, **k)

            setattr(store, name, counting)
        path = f"{base_url}/api/sessions/etag-3/events/history?limit=10"
        async with httpx.AsyncClient() as client:
            r = await client.get(path)
            assert r.status_code == 200 and r.json()["total"] == 30
            assert calls == ["tail_array"]  # versions 1-20 are older: the cut came along
            calls.clear()
            whole = await client.get(f"{base_url}/api/sessions/etag-3/events/history?limit=30")
            assert whole.status_code == 200 and len(whole.json()["events"]) == 30
            assert calls == ["tail_array"]
            calls.clear()
            again = await client.get(path, headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
            assert calls == ["stream_info"]
