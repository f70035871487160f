"""The session service against a real SQLite file: commands, checkpoints, rebuilds."""

from __future__ import annotations

from api.core.service import SessionService
from api.core.tasks import stop_task as cancel_task
from eventstore import EventStore, RecordedEvent, open_store
from projections import catalogue as cat
from projections.commands import ColonyFacts, Queen, StartSession, decide_start, decide_stop
from projections.envelope import new_event
from projections.errors import DomainError, NotFound

QUEEN = Queen("queen_technology", "Technology")
FACTS = ColonyFacts(
    colony_id="c1",
    colony_name="Colony One",
    agent_path="/agents/c1",
    worker_name="w",
    triggers=(
        {
            "id": "t1",
            "name": "T",
            "trigger_type": "timer",
            "trigger_config": {"interval_minutes": 5},
            "task": "do",
        },
    ),
)


async def all_events(store: EventStore) -> list[RecordedEvent]:
    return await store.read_all(after_position=0, limit=1_000_000)


async def test_create_stop_resume_and_checkpoint_restore(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    start = StartSession("s1", 1000.0, QUEEN, colony=FACTS)
    state = await service.execute("s1", lambda s: decide_start(s, start))
    assert state.live and state.colony is not None and state.triggers["t1"].active
    assert state.queen_phase == "working"
    await service.execute("s1", lambda s: decide_stop(s, "s1", 1001.0))
    assert not service.get("s1").live  # type: ignore[union-attr]
    try:
        await service.execute("s1", lambda s: decide_stop(s, "s1", 1002.0))
    except DomainError as exc:
        assert isinstance(exc, NotFound)
    else:
        raise AssertionError("stopping a cold session must be refused")
    resume = StartSession("s1", 1003.0, QUEEN, resume=True)
    state = await service.execute("s1", lambda s: decide_start(s, resume))
    assert state.live and state.queen_phase == "reviewing" and state.colony is not None
    again = await service.execute("s1", lambda s: decide_start(s, resume))
    assert again == state  # idempotent: no events
    await service.stop()
    expected = cat.fold_all(await all_events(store))
    await store.close()

    store = await open_store(db_url)
    restored = SessionService(store)
    await restored.start()
    assert restored.restored_from_checkpoint
    assert restored.events_folded_at_start == 0
    assert restored.catalogue == expected
    assert list(restored.catalogue.sessions) == list(expected.sessions)
    assert cat.decode_state(restored.encode_checkpoint()) == expected
    await restored.stop()
    await store.close()


async def test_delete_erases_and_is_recorded(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    start = StartSession("s2", 1000.0, QUEEN)
    await service.execute("s2", lambda s: decide_start(s, start))
    assert await service.delete_session("s2", 1001.0)
    assert service.get("s2") is None and service.is_deleted("s2")
    info = await store.stream_info("s2")
    assert info is not None and info.deleted and info.erased_events == 3
    types = [e.type for e in await all_events(store)]
    assert types[-2:] == ["session_deleted", "session_erased"]
    assert not await service.delete_session("s2", 1002.0)
    assert cat.fold_all(await all_events(store)) == service.catalogue
    await service.stop()
    await store.close()


async def test_erase_interrupted_by_a_crash_is_finished_on_start(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    start = StartSession("s3", 1000.0, QUEEN)
    await service.execute("s3", lambda s: decide_start(s, start))
    marker = new_event(
        "session_deleted", {"session_id": "s3"}, timestamp=1001.0, stream_id="$sessions"
    )
    await store.append(cat.SESSIONS_STREAM, [marker])  # the crash came before the erase
    service._stopping = True  # die without the final checkpoint
    for task in (service._follower, service._checkpointer):
        assert task is not None
        await cancel_task(task)
    await store.close()

    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    info = await store.stream_info("s3")
    assert info is not None and info.deleted and info.erased_events == 3
    assert service.catalogue.unerased == [] and service.is_deleted("s3")
    assert [e.type for e in await all_events(store)][-1] == "session_erased"
    await service.stop()
    await store.close()


async def test_event_racing_past_the_deletion_marker_is_ignored(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    start = StartSession("s4", 1000.0, QUEEN)
    await service.execute("s4", lambda s: decide_start(s, start))
    marker = new_event(
        "session_deleted", {"session_id": "s4"}, timestamp=1001.0, stream_id="$sessions"
    )
    await store.append(cat.SESSIONS_STREAM, [marker])
    late = new_event("client_input_received", {"content": "late"}, timestamp=1002.0)
    await store.append("s4", [late])  # a command that was in flight during the delete
    await service.wait_for(await store.head_position())
    assert service.get("s4") is None
    await service.delete_session("s4", 1003.0)
    assert service.catalogue == cat.fold_all(await all_events(store))
    await service.stop()
    await store.close()
