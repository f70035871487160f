"""Property: checkpoint + the events after it == a fold of the whole log from 0.

Random commands go through the real service on a real SQLite file; the service
is restarted (from its checkpoint) at random points, sometimes after a crash
that skipped the final checkpoint. The restored catalogue must equal the
from-scratch fold, and the checkpoint encoding must round-trip exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.core.service import SessionService
from api.core.tasks import stop_task as cancel_task
from eventstore import EventStore, open_store
from projections import catalogue as cat
from projections import commands
from projections.commands import ColonyFacts, Queen, StartSession
from projections.envelope import new_event
from projections.errors import DomainError

QUEEN = Queen("queen_technology", "Technology")
FACTS = {
    name: ColonyFacts(
        colony_id=name,
        colony_name=name.title(),
        agent_path=f"/agents/{name}",
        worker_name="w",
        triggers=tuple(
            {
                "id": f"t{i}",
                "name": f"T{i}",
                "trigger_type": "timer",
                "trigger_config": {"interval_minutes": i + 1},
                "task": "x",
            }
            for i in range(n)
        ),
    )
    for name, n in (("alpha", 2), ("beta", 0))
}
IDS = st.sampled_from(["a", "b", "c"])
OPS = st.one_of(
    st.tuples(st.just("create"), IDS, st.sampled_from([None, "alpha", "beta"])),
    st.tuples(st.just("resume"), IDS, st.none()),
    st.tuples(st.just("stop"), IDS, st.none()),
    st.tuples(st.just("load"), IDS, st.sampled_from(["alpha", "beta"])),
    st.tuples(st.just("unload"), IDS, st.none()),
    st.tuples(st.just("delete"), IDS, st.none()),
    st.tuples(st.just("message"), IDS, st.text(max_size=200)),
    st.tuples(st.just("fire"), IDS, st.none()),
    st.tuples(st.just("restart"), st.none(), st.none()),
    st.tuples(st.just("crash"), st.none(), st.none()),
)


async def run_op(service: SessionService, op: str, sid: str, arg: Any, now: float) -> None:
    if op == "create":
        colony = FACTS[arg] if arg else None
        cmd = StartSession(sid, now, QUEEN, colony=colony)
        await service.execute(sid, lambda s: commands.decide_start(s, cmd))
    elif op == "resume":
        cmd = StartSession(sid, now, QUEEN, resume=True)
        await service.execute(sid, lambda s: commands.decide_start(s, cmd))
    elif op == "stop":
        await service.execute(sid, lambda s: commands.decide_stop(s, sid, now))
    elif op == "load":
        await service.execute(sid, lambda s: commands.decide_load_colony(s, sid, FACTS[arg], now))
    elif op == "unload":
        await service.execute(sid, lambda s: commands.decide_unload_colony(s, sid, now))
    elif op == "delete":
        await service.delete_session(sid, now)
    elif op == "message":
        event = new_event("client_input_received", {"content": arg}, timestamp=now)
        await service.execute(sid, lambda s: [event] if s is not None else [])
    elif op == "fire":

        def decide(s: Any) -> list[Any]:
            if s is None or not s.triggers:
                return []
            tid = next(iter(s.triggers))
            data = {"trigger_id": tid, "last_fired_at": int(now * 1000)}
            return [new_event("trigger_fired", data, timestamp=now)]

        await service.execute(sid, decide)


async def scenario(ops: list[tuple[str, Any, Any]], store_url: str | None = None) -> None:
    folder = tempfile.mkdtemp(prefix="hivelog-rebuild-")
    url = store_url or f"sqlite:///{folder}/log.db"
    store: EventStore = await open_store(url)
    service = SessionService(store)
    await service.start()
    try:
        for i, (op, sid, arg) in enumerate(ops):
            if op in ("restart", "crash"):
                if op == "restart":
                    await service.stop()
                else:  # no final checkpoint: restart must fold what came after the last one
                    service._stopping = True
                    for task in (service._follower, service._checkpointer):
                        assert task is not None
                        await cancel_task(task)
                await store.close()
                store = await open_store(url)
                service = SessionService(store)
                await service.start()
                continue
            with contextlib.suppress(DomainError):
                await run_op(service, op, sid, arg, 1_000_000.0 + i)
        events = await store.read_all(after_position=0, limit=1_000_000)
        reference = cat.fold_all(events)
        await service.wait_for(await store.head_position())
        assert service.catalogue == reference
        assert list(service.catalogue.sessions) == list(reference.sessions)
        assert cat.decode_state(service.encode_checkpoint()) == reference
        assert cat.decode_state(cat.encode(reference)) == reference
        assert service.encode_checkpoint() == cat.encode(reference)
    finally:
        await service.stop()
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(OPS, max_size=30))
def test_checkpoint_plus_tail_equals_full_rebuild(ops: list[tuple[str, Any, Any]]) -> None:
    asyncio.run(scenario(ops))
