"""Adopting a dead node's sessions frees the fire claims it died holding.

The scheduler claims `fire:<session>` for 30 s (FIRE_CLAIM_TTL) around each fire; a
node killed or paused mid-fire kept that claim, so a session adopted from it (after
the 10 s node lease) could not fire until the claim ran out: with two real nodes, 1-2
of 31 timer sessions stayed silent after adoption while the paused node's claims had
20+ s left. The adopting round now releases claims whose owner is not alive."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.core.nodes import NodeLiveness
from api.core.service import SessionService
from eventstore import open_store
from projections.commands import ColonyFacts, Queen, StartSession, decide_start
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401

pytestmark = pytest.mark.postgres

QUEEN = Queen("queen_technology", "Technology")
TICK = {
    "id": "tick",
    "name": "Tick",
    "trigger_type": "timer",
    "trigger_config": {"interval_minutes": 5},
    "task": "tick",
}
FACTS = ColonyFacts("c1", "Colony", "/agents/c1", "w", triggers=(TICK,))


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_adopting_frees_the_dead_nodes_fire_claim(
    backend: str,
    pg_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = fresh_url(pg_dsn) if backend == "postgresql" else f"sqlite:///{tmp_path}/a.db"
    store = await open_store(url)
    service = SessionService(store)
    await service.start()
    node = NodeLiveness(store, "node-b", ttl=30)
    try:
        start = StartSession("s1", time.time(), QUEEN, colony=FACTS, runner_node="node-dead")
        await service.execute("s1", lambda s: decide_start(s, start))
        # node-dead was firing s1 when it died: its claim outlives its node lease
        assert await store.leases.acquire("fire:s1", "node-dead", 30) is not None
        await node.start()
        assert await node.adopt_orphans(service) == ["s1"]
        claim = await store.leases.acquire("fire:s1", "node-b", 30)
        assert claim is not None and claim.owner == "node-b"
        assert await store.leases.acquire("node:node-b", "node-c", 30) is None  # ours stays
    finally:
        await node.stop()
        await service.stop()
        await store.close()
