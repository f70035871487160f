"""Reads saved by the doorbell's head: the sessions follower and the SSE hub on a real
SQLite file. Commits this process made and folded are not read back; commits it could
not place (another process on the file) still are, so nothing is missed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from api.core.service import SessionService
from api.http.sse import Client, Hub
from eventstore import EventStore, RecordedEvent, open_store
from eventstore.base import Doorbell
from projections.commands import Queen, StartSession, decide_start
from projections.envelope import new_event

QUEEN = Queen("queen_technology", "Technology")


class CountingReads:
    """Counts `read_all` calls on one store (the object, not the class)."""

    def __init__(self, store: EventStore) -> None:
        self.calls = 0
        original = store.read_all

        async def counted(
            after_position: int = 0, limit: int = 1000, types: Sequence[str] | None = None
        ) -> list[RecordedEvent]:
            self.calls += 1
            return await original(after_position=after_position, limit=limit, types=types)

        store.read_all = counted  # type: ignore[method-assign]


def test_doorbell_says_nothing_new_only_for_placed_commits_already_seen() -> None:
    async def main() -> None:
        bell = Doorbell()
        unplaced = bell.unplaced
        bell.ring(10)
        assert bell.nothing_new(10, unplaced)
        assert not bell.nothing_new(9, unplaced)  # position 10 not seen yet
        bell.ring(7)  # an older head never moves it back
        assert bell.head == 10
        bell.ring()  # a commit nobody could place
        assert not bell.nothing_new(10, unplaced)
        assert bell.nothing_new(10, bell.unplaced)

    asyncio.run(main())


async def test_follower_does_not_read_back_what_execute_folded(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    reads = CountingReads(store)
    try:
        for i in range(20):
            start = StartSession(f"s{i}", 1000.0 + i, QUEEN)
            await service.execute(f"s{i}", partial(decide_start, cmd=start))
        await asyncio.sleep(0.05)  # the follower has heard every ring
        assert reads.calls <= 2  # was one read per commit (20)
        assert len(service.live_ids()) == 20
    finally:
        await service.stop()
        await store.close()


async def test_follower_still_folds_another_processs_commit(db_url: str) -> None:
    store = await open_store(db_url)
    store.poll_seconds = 0.05
    service = SessionService(store)
    await service.start()
    other = await open_store(db_url)  # its commits never ring this store's doorbell
    try:
        created = new_event("session_created", {"session_id": "elsewhere"}, timestamp=1.0)
        result = await other.append("elsewhere", [created])
        await service.wait_for(result.last_position, within=5.0)
        assert service.get("elsewhere") is not None
    finally:
        await other.close()
        await service.stop()
        await store.close()


async def test_idle_hub_reads_nothing_and_a_late_client_misses_nothing(db_url: str) -> None:
    store = await open_store(db_url)
    hub = Hub(store, keepalive=15.0, queue_size=100)
    await hub.start()
    reads = CountingReads(store)
    try:
        for i in range(10):
            await store.append(
                f"s{i}", [new_event("session_created", {"session_id": f"s{i}"}, timestamp=1.0)]
            )
        await asyncio.sleep(0.05)
        assert reads.calls == 0  # no client: the position moved with the doorbell's head
        assert hub.position == await store.head_position()
        client = Client("s0", None, asyncio.Queue(100))
        handover = hub.register(client)
        assert handover == await store.head_position()
        event = new_event("client_input_received", {"content": "hi"}, timestamp=2.0)
        result = await store.append("s0", [event])
        got = await asyncio.wait_for(client.queue.get(), 5.0)
        assert got.position == result.last_position
    finally:
        await hub.stop()
        await store.close()
