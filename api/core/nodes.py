"""Node liveness: each serving process holds the lease `node:<node_id>` while it runs.

Other nodes on the same log read the live holders to tell which nodes are alive;
a node whose lease expired (SIGKILL, partition, long pause) is dead to them, and
its work can be adopted. A restarted node with the same stable `--node-id` takes
its lease back at once (same owner), as APScheduler 4 advises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from api.core.supervisor import RestartPolicy, Supervisor
from api.core.tasks import stop_task
from eventstore import EventStore, StoreUnavailable
from eventstore.leases import Lease
from projections.errors import DomainError
from projections.ownership import decide_adopt, needs_adoption

if TYPE_CHECKING:
    from api.core.service import SessionService

log = logging.getLogger("hivelog.nodes")

NODE_LEASE_TTL = 10.0
NODE_PREFIX = "node:"
FIRE_CLAIM_PREFIX = "fire:"  # the scheduler's per-session fire claims (api/core/scheduler.py)


def node_lease_name(node_id: str) -> str:
    return f"{NODE_PREFIX}{node_id}"


class NodeLiveness:
    """Holds and renews this node's lease; answers which nodes are alive."""

    def __init__(
        self,
        store: EventStore,
        node_id: str,
        ttl: float = NODE_LEASE_TTL,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.store = store
        self.supervisor = supervisor or Supervisor()
        self.node_id = node_id
        self.ttl = ttl
        self.lease: Lease | None = None
        self._task: asyncio.Task[None] | None = None
        self._adopter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self.lease = await self._acquire()
        except StoreUnavailable as exc:  # full disk: serve reads; the renew loop retries
            self.supervisor.incidents.refused_write(exc)
        # restarts well inside the lease's time to live
        policy = RestartPolicy(max_seconds=self.ttl / 3)
        self._task = self.supervisor.spawn(
            "node_lease", self._renew_loop, policy=policy, probe=self._lease_report
        )

    def _lease_report(self) -> str | None:
        if self.lease is None:
            return f"node {self.node_id} does not hold its liveness lease"
        return None

    async def _acquire(self) -> Lease | None:
        lease = await self.store.leases.acquire(
            node_lease_name(self.node_id), self.node_id, self.ttl
        )
        if lease is None:
            log.error(
                "node id %s is held by another live process; pick a unique --node-id", self.node_id
            )
        return lease

    async def _renew_loop(self) -> None:
        """Renew every ttl/3; a failure raises to the supervisor (logged, restarted)."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            renewed = await self.store.leases.renew(self.lease, self.ttl) if self.lease else None
            if renewed is None:
                log.warning("node lease for %s was lost; taking it again", self.node_id)
                renewed = await self._acquire()
            self.lease = renewed

    async def alive(self) -> set[str]:
        """Node ids whose lease is unexpired right now."""
        holders = await self.store.leases.holders(NODE_PREFIX)
        return {lease.owner for lease in holders}

    async def adopt_orphans(self, sessions: SessionService) -> list[str]:
        """Adopt every live session whose runner node is not alive; returns those adopted."""
        if self.lease is None:
            return []  # not alive ourselves: adopting would only orphan them again
        alive = await self.alive()
        await self._free_dead_claims(alive)
        adopted = []
        for session_id in sessions.live_ids():
            if not needs_adoption(sessions.get(session_id), alive):
                continue
            before = sessions.get(session_id)
            try:
                after = await sessions.execute(
                    session_id,
                    lambda state: decide_adopt(state, self.node_id, alive, time.time()),
                )
            except DomainError:
                continue  # deleted or stopped meanwhile
            moved = before is not None and after.version != before.version
            if moved and after.runner_node == self.node_id:
                adopted.append(session_id)
        if adopted:
            log.warning("node %s adopted %d orphaned sessions", self.node_id, len(adopted))
        return adopted

    async def _free_dead_claims(self, alive: set[str]) -> None:
        """Release the fire claims of nodes that are not alive. A node that died (or was
        paused) while firing kept its `fire:<session>` claim for the claim's own 30 s, so
        the sessions adopted from it stayed silent that long after their adoption. A
        released claim of a node that comes back costs at most a refused duplicate: the
        fire ids are derived from the slot."""
        leases = self.store.leases
        for lease in await leases.holders(FIRE_CLAIM_PREFIX):
            if lease.owner not in alive and lease.owner != self.node_id:
                await leases.release(lease)

    async def _adopt_loop(self, sessions: SessionService) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            await self.adopt_orphans(sessions)  # a failure goes to the supervisor

    def start_adopting(self, sessions: SessionService) -> None:
        self._adopter = self.supervisor.spawn("node_adopter", lambda: self._adopt_loop(sessions))

    async def stop(self) -> None:
        for task in (self._task, self._adopter):
            await stop_task(task)
        self._task = self._adopter = None
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.store.leases.release(self.lease)
            self.lease = None
