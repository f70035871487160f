"""GET /api/sessions/{id}/events/history against a real server on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import NewEvent
from tests.support.server import Server, running_server
from tests.support.sse_client import envelope, events, store_at


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("history")
    url = f"sqlite:///{tmp / 'hivelog.db'}"
    with running_server(url, tmp, env={"HIVELOG_AGENTS_ROOTS": str(tmp)}) as srv:
        srv.db_url = url  # type: ignore[attr-defined]
        yield srv


def db(server: Server) -> str:
    return server.db_url  # type: ignore[attr-defined,no-any-return]


def history(server: Server, sid: str, **params: str | int) -> httpx.Response:
    return httpx.get(f"{server.base_url}/api/sessions/{sid}/events/history", params=params)


async def test_hive_shape_oldest_first_with_positions(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append("shape-1", events("client_output_delta", 5))
        await store.append("other-1", events("noise", 3))
        await store.append("shape-1", events("llm_turn_complete", 2))
    r = history(server, "shape-1", limit=4)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body)[:6] == ["events", "session_id", "total", "returned", "truncated", "limit"]
    assert body["session_id"] == "shape-1"
    assert (body["total"], body["returned"], body["truncated"], body["limit"]) == (7, 4, True, 4)
    evs = body["events"]
    assert [e["version"] for e in evs] == [4, 5, 6, 7]
    assert [e["data"]["i"] for e in evs] == [3, 4, 0, 1]
    positions = [e["position"] for e in evs]
    assert positions == sorted(positions)
    # The envelope is passed through whole, in hive's key order, after position/version.
    assert list(evs[0]) == ["position", "version", *envelope("x", {}), "seq"]
    assert [e["seq"] for e in evs] == [e["version"] for e in evs]  # hive 54fd8db's seq
    assert body["has_more_older"] is True and body["has_more_newer"] is False
    assert body["prev"] == positions[0] and body["next"] == positions[-1]


async def test_limit_default_clamp_and_non_integer(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append("limits-1", events("custom", 3))
    # hive 54fd8db's default (500) wins over 3c390c9e's 2000; 0 means the default
    assert history(server, "limits-1").json()["limit"] == 500
    assert history(server, "limits-1", limit="abc").json()["limit"] == 500
    assert history(server, "limits-1", limit="1.5").json()["limit"] == 500
    assert history(server, "limits-1", limit="0").json()["limit"] == 500
    assert history(server, "limits-1", limit=-7).json()["returned"] == 1
    assert history(server, "limits-1", limit=99999).json()["limit"] == 10000
    whole = history(server, "limits-1").json()
    assert (whole["returned"], whole["truncated"], whole["has_more_older"]) == (3, False, False)


def test_unknown_and_invalid_session_is_404(server: Server) -> None:
    for sid in ("never-existed", "$sessions", "a..b", "a" * 200):
        r = history(server, sid)
        assert r.status_code == 404, sid
        assert "error" in r.json()
    # A cursor or filter does not change that.
    assert history(server, "never-existed", before=5, types="x").status_code == 404


async def test_deleted_session_is_404(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append("deleted-1", events("custom", 2))
        assert history(server, "deleted-1").status_code == 200
        await store.delete_stream("deleted-1")
    assert history(server, "deleted-1").status_code == 404
    assert history(server, "deleted-1", after=0).status_code == 404


def test_bad_cursor_is_400(server: Server) -> None:
    for params in ({"before": "x"}, {"after": "-1"}, {"after": "1e3"}, {"before": "9" * 30}):
        r = history(server, "never-existed", **params)
        assert r.status_code == 400, params
        assert "position" in r.json()["error"]


async def test_cursors_and_types(server: Server) -> None:
    async with store_at(db(server)) as store:
        for i in range(6):
            await store.append("cursor-1", events("a", 1, start=i))
            await store.append("cursor-1", events("b", 1, start=i))
            await store.append("cursor-noise", events("a", 1))
    full = history(server, "cursor-1").json()["events"]
    pos = [e["position"] for e in full]
    page = history(server, "cursor-1", limit=3, before=pos[6]).json()
    assert [e["position"] for e in page["events"]] == pos[3:6]
    assert page["has_more_older"] and page["has_more_newer"]
    assert page["prev"] == pos[3]
    page = history(server, "cursor-1", limit=3, after=pos[8]).json()
    assert [e["position"] for e in page["events"]] == pos[9:12]
    assert page["has_more_older"] and not page["has_more_newer"]
    assert page["next"] == pos[11]
    empty = history(server, "cursor-1", after=pos[11]).json()
    assert empty["events"] == [] and empty["next"] == pos[11] and not empty["has_more_newer"]
    only_b = history(server, "cursor-1", types="b", limit=2).json()
    assert [e["type"] for e in only_b["events"]] == ["b", "b"]
    assert [e["data"]["i"] for e in only_b["events"]] == [4, 5]
    assert only_b["has_more_older"] and only_b["total"] == 12
    unknown = history(server, "cursor-1", types="nope,,").json()
    assert unknown["events"] == [] and not unknown["has_more_older"]
    window = history(server, "cursor-1", after=pos[1], before=pos[5]).json()
    assert [e["position"] for e in window["events"]] == pos[2:5]


async def test_raw_bytes_payloads_stay_valid_json(server: Server) -> None:
    async with store_at(db(server)) as store:
        await store.append(
            "raw-1",
            [
                NewEvent("x", b'{\n  "pretty": true\n}'),
                NewEvent("y", b"[1, 2]"),
                NewEvent("z", b"{}"),
                NewEvent("w", b"{ }"),
            ],
        )
    evs = history(server, "raw-1").json()["events"]
    assert evs[0]["pretty"] is True
    assert evs[1]["data"] == [1, 2] and evs[1]["type"] == "y"
    assert set(evs[2]) == {"position", "version", "seq"} == set(evs[3])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.integers(1, 9),
    types=st.sampled_from(["", "a", "b", "a,b", "c"]),
    backwards=st.booleans(),
)
def test_pages_stitched_equal_a_full_read(
    server: Server,
    stitched_session: list[dict[str, object]],
    limit: int,
    types: str,
    backwards: bool,
) -> None:
    wanted = [e for e in stitched_session if not types or e["type"] in types.split(",")]
    seen: list[dict[str, object]] = []
    params: dict[str, str | int] = {"limit": limit}
    if types:
        params["types"] = types
    if backwards:
        page = history(server, "stitch-1", **params).json()
        for _ in range(100):
            seen[:0] = page["events"]
            if not page["has_more_older"]:
                break
            page = history(server, "stitch-1", **params, before=page["prev"]).json()
    else:
        cursor = 0
        for _ in range(100):
            page = history(server, "stitch-1", **params, after=cursor).json()
            seen.extend(page["events"])
            cursor = page["next"]
            if not page["has_more_newer"]:
                break
    assert seen == wanted


@pytest.fixture(scope="module")
def stitched_session(server: Server) -> list[dict[str, object]]:
    import asyncio

    async def fill() -> None:
        async with store_at(db(server)) as store:
            for i in range(23):
                await store.append("stitch-1", events("a" if i % 3 else "b", 1, start=i))
                if i % 4 == 0:
                    await store.append("stitch-noise", events("a", 2))

    asyncio.run(fill())
    body = history(server, "stitch-1").json()
    assert body["returned"] == 23
    return [json.loads(json.dumps(e)) for e in body["events"]]
