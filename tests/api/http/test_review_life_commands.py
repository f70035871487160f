"""Review of the command path (sessions and triggers): concurrent commands on one
session, and commands on a node whose projection has not folded another node's
events yet. Real stores: a SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from api.core.service import SessionService
from eventstore import EventStore, open_store
from projections import trigger_commands as tc
from projections.commands import ColonyFacts, Queen, StartSession, decide_start, decide_stop
from projections.errors import DomainError
from projections.session import SessionState
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.sessions_support import TIMER

QUEEN = Queen("queen_technology", "Technology")
FACTS = ColonyFacts(
    colony_id="c1",
    colony_name="c1",
    agent_path="/agents/c1",
    worker_name="w",
    triggers=({**TIMER, "id": "t1"},),
)


def _start(session_id: str) -> StartSession:
    return StartSession(session_id=session_id, now=1000.0, queen=QUEEN, colony=FACTS)


@asynccontextmanager
async def _service(url: str) -> AsyncIterator[tuple[EventStore, SessionService]]:
    store = await open_store(url)
    service = SessionService(store)
    await service.start()
    try:
        yield store, service
    finally:
        await service.stop()
        await store.close()


async def _types(store: EventStore, session_id: str) -> list[str]:
    return [e.type for e in await store.read(session_id)]


async def _twenty_edits(url: str) -> None:
    """20 edits of one trigger at once: each one is applied, none refused 'busy'."""
    async with _service(url) as (store, service):
        await service.execute("s1", lambda s: decide_start(s, _start("s1")))

        async def edit(n: int) -> SessionState | DomainError:
            cmd = tc.UpdateTrigger(body={"task": f"task {n}"}, now=1001.0 + n)
            try:
                return await service.execute("s1", lambda s: tc.decide_update(s, "s1", "t1", cmd))
            except DomainError as exc:
                return exc

        outcomes = await asyncio.gather(*(edit(n) for n in range(20)))
        refused = [o.message for o in outcomes if isinstance(o, DomainError)]
        assert refused == []
        assert (await _types(store, "s1")).count("trigger_updated") == 20
        assert service._turns == {}  # no lock is kept once nobody holds or awaits it


async def test_twenty_concurrent_commands_on_one_session_all_apply_sqlite(tmp_path: Path) -> None:
    await _twenty_edits(f"sqlite:///{tmp_path / 'h.db'}")


@pytest.mark.postgres
async def test_twenty_concurrent_commands_on_one_session_all_apply_postgres(
    pg_dsn: str,  # noqa: F811
) -> None:
    await _twenty_edits(fresh_url(pg_dsn))


async def test_concurrent_deletes_record_the_deletion_once(tmp_path: Path) -> None:
    """Five DELETEs of one session at once: one `session_deleted`, one `session_erased`
    (each delete wrote both before), and every one answers that it is gone."""
    async with _service(f"sqlite:///{tmp_path / 'h.db'}") as (store, service):
        await service.execute("s1", lambda s: decide_start(s, _start("s1")))
        await asyncio.gather(*(service.delete_session("s1", 1002.0) for _ in range(5)))
        markers = [e.type for e in await store.read("$sessions")]
        assert markers == ["session_deleted", "session_erased"]
        assert service.get("s1") is None and service.is_deleted("s1")


@pytest.mark.postgres
async def test_a_node_acts_on_what_another_node_just_appended(pg_dsn: str) -> None:  # noqa: F811
    """Node B, asked right after node A answered, decides on the log's head: B's stop
    of A's new session was a 404, B's delete a 200 that deleted nothing, B's early
    trigger check a 404 (B's follower had not folded A's events yet)."""
    url = fresh_url(pg_dsn)
    async with _service(url) as (_, a), _service(url) as (_, b):
        await a.execute("s1", lambda s: decide_start(s, _start("s1")))
        stopped = await b.execute("s1", lambda s: decide_stop(s, "s1", 1001.0))
        assert not stopped.live

        await a.execute("s2", lambda s: decide_start(s, _start("s2")))
        live, trigger = await b.confirm("s2", lambda s: tc.find_trigger(s, "s2", "t1"))
        assert (live.session_id, trigger.id) == ("s2", "t1")

        await a.execute("s3", lambda s: decide_start(s, _start("s3")))
        assert await b.delete_session("s3", 1002.0) is True
        await a.wait_for(await a.store.head_position())
        assert a.get("s3") is None and a.is_deleted("s3")

        # nothing there, even at the head: still a refusal
        with pytest.raises(DomainError):
            await b.execute("nobody", lambda s: decide_stop(s, "nobody", 1003.0))
        assert await b.delete_session("nobody", 1003.0) is False
