"""`store.tail_array`: the served history page built by the database, on both backends.

The reference is the per-row path it replaces: `tail_json`'s rows spliced by
`api/http/eventjson.events_array`. Whenever the database says it spliced, the bytes
must be exactly those; when it declines, some row must really need the careful path.
The page cache must never serve a page of an older head.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.http.eventjson import events_array
from eventstore import EventStore, JsonRow, NewEvent, StreamDeleted, open_store
from eventstore.tail_array import TailCache
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.store_contract import FreshStore

PLAIN = {"type": "x", "stream_id": "queen", "data": {"k": "v \u00e9 \U0001f600", "n": 1.5}}
# Payload shapes: (description, NewEvent data). Raw bytes are stored as given.
SHAPES: list[object] = [
    PLAIN,
    {"type": "y", "data": {"text": 'line\nbreak "seq" ok'}},  # escaped: still plain
    {"seq": 7, "type": "imported"},  # hive's own seq: re-encoded without it
    {"type": "z", "data": "seq"},  # the bytes `"seq"` in a value: the careful path too
    {},
    [1, 2],
    "just a string",
    b'{"raw": 1,\n "spaced": true}',
    b' {"lead": 1}',
    b'{"crlf":\r\n1}',
]


def fast_path(rows: Sequence[JsonRow]) -> bool:
    """eventjson's fast-path condition, plus gapless versions."""
    body = b"".join(r.data_json for r in rows)
    return (
        all(
            r.data_json.startswith(b'{"')
            and r.data_json.endswith(b"}")
            and b'"seq"' not in r.data_json
            for r in rows
        )
        and b"\n" not in body
        and b"\r" not in body
        and [r.version for r in rows] == list(range(rows[0].version, rows[0].version + len(rows)))
    )


async def check(store: EventStore, stream: str, n: int) -> None:
    page = await store.tail_array(stream, n)
    reference = await store.tail_json(stream, n)
    info = await store.stream_info(stream)
    rows = reference.rows
    assert (page.count, page.total, page.info) == (len(rows), reference.total, info)
    if rows:
        assert (page.first_version, page.first_position, page.last_position) == (
            rows[0].version,
            rows[0].position,
            rows[-1].position,
        )
    if page.spliced:
        assert not rows or fast_path(rows)
        assert page.array(b"<", b">") == events_array(rows, prefix=b"<", suffix=b">")
        orjson.loads(page.array())
    else:
        assert rows and not fast_path(rows)


class TailArrayContract(FreshStore):
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        batches=st.lists(
            st.lists(st.sampled_from(range(len(SHAPES))), min_size=1, max_size=6), max_size=6
        ),
        plain_only=st.booleans(),
        n=st.integers(min_value=1, max_value=40),
    )
    def test_property_same_bytes_as_the_row_path(
        self, batches: list[list[int]], plain_only: bool, n: int
    ) -> None:
        async def body(store: EventStore) -> None:
            for batch in batches:
                shapes = [0 if plain_only else i for i in batch]
                await store.append("s", [NewEvent("t", SHAPES[i]) for i in shapes])
                await store.append("noise", [NewEvent("t", PLAIN)])
                await check(store, "s", n)
                await check(store, "s", n)  # the cached page, after the same head
            await check(store, "s", n)

        self.run_fresh(body)

    async def test_plain_pages_are_spliced_and_exact(self, store: EventStore) -> None:
        for k in range(5):
            await store.append("s", [NewEvent("t", {**PLAIN, "i": k}) for _ in range(3)])
        page = await store.tail_array("s", 4)
        assert page.spliced and page.count == 4 and page.total == 15
        events = orjson.loads(page.array())
        assert [e["version"] for e in events] == [12, 13, 14, 15]
        assert [e["seq"] for e in events] == [12, 13, 14, 15]
        assert list(events[0]) == ["position", "version", *PLAIN, "i", "seq"]
        whole = await store.tail_array("s", 100)
        assert whole.count == 15 and whole.first_version == 1

    async def test_unknown_empty_and_deleted(self, store: EventStore) -> None:
        page = await store.tail_array("nobody", 10)
        assert (page.count, page.total, page.info, page.array()) == (0, 0, None, b"[]")
        await store.append("gone", [NewEvent("t", PLAIN)])
        await store.tail_array("gone", 10)  # cached
        await store.delete_stream("gone")
        with pytest.raises(StreamDeleted):
            await store.tail_array("gone", 10)
        with pytest.raises(StreamDeleted):
            await store.tail_json("gone", 10)

    async def test_cache_never_serves_an_older_head(self, store: EventStore) -> None:
        await store.append("s", [NewEvent("t", {**PLAIN, "i": 0})])
        for i in range(1, 20):
            before = await store.tail_array("s", 5)
            assert before.total == i
            await store.append("s", [NewEvent("t", {**PLAIN, "i": i})])
            after = await store.tail_array("s", 5)
            assert after.total == i + 1
            assert orjson.loads(after.array())[-1]["i"] == i
            await check(store, "s", 5)

    async def test_concurrent_reads_and_appends_stay_exact(self, store: EventStore) -> None:
        """Readers racing an appender: every page is the page of the head it reports."""
        await store.append("s", [NewEvent("t", {**PLAIN, "i": 0})])

        async def reader() -> None:
            for _ in range(30):
                page = await store.tail_array("s", 3)
                events = orjson.loads(page.array())
                assert events[-1]["version"] == page.total
                assert [e["i"] for e in events] == list(range(page.total - len(events), page.total))

        async def writer() -> None:
            for i in range(1, 30):
                await store.append("s", [NewEvent("t", {**PLAIN, "i": i})])

        await asyncio.gather(writer(), *(reader() for _ in range(4)))

    async def test_archive_cut_moves_the_page(self, store: EventStore) -> None:
        """The head does not move with a cut: the cached page must not be served."""
        await store.append("s", [NewEvent("t", {**PLAIN, "i": i}) for i in range(6)])
        first = await store.tail_array("s", 10)
        assert first.count == 6 and first.info is not None and first.info.truncated_before == 0
        assert await store.archive_before("s", 4, 3) == 3
        page = await store.tail_array("s", 10)
        assert (page.count, page.first_version, page.total) == (3, 4, 6)
        assert page.info is not None and page.info.truncated_before == 4
        await check(store, "s", 10)
        assert await store.archive_before("s", 7, 3) == 3  # archived whole: head kept
        whole = await store.tail_array("s", 10)
        assert (whole.count, whole.total, whole.array()) == (0, 6, b"[]")
        assert whole.info is not None and whole.info.truncated_before == 7
        await check(store, "s", 10)


def test_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    cache = TailCache(max_bytes=4000)

    def row(head: int, size: int) -> tuple[object, ...]:
        body = b"x" * size
        return (1, head, head, head, head, 1, body, head, head, False, 0, 0)

    for k in range(5):
        cache.finish(f"s{k}", 10, row(1, 900), None)
    assert cache.size <= 4000
    assert cache.lookup("s0", 10) is None and cache.lookup("s4", 10) is not None
    cache.finish("big", 10, row(1, 3000), None)  # over a quarter of the budget: not kept
    assert cache.lookup("big", 10) is None


class TestSQLiteTailArray(TailArrayContract):
    async def open_fresh(self) -> EventStore:
        folder = tempfile.mkdtemp(prefix="hivelog-test-")
        return await open_store(f"sqlite:///{folder}/store.db")


@pytest.mark.postgres
class TestPostgresTailArray(TailArrayContract):
    @pytest.fixture(autouse=True)
    def _database(self, pg_dsn: str) -> None:  # noqa: F811
        self.dsn = pg_dsn

    async def open_fresh(self) -> EventStore:
        return await open_store(fresh_url(self.dsn))
