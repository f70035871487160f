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
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from eventstore import EventStore
from eventstore.leases import Lease

log = logging.getLogger("hivelog.nodes")

NODE_LEASE_TTL = 10.0
NODE_PREFIX = "node:"


def node_lease_name(node_id: str) -> str:
    return f"{NODE_PREFIX}{node_id}"


class NodeLiveness:
    """Holds and renews this node's lease; answers which nodes are alive."""

    def __init__(self, store: EventStore, node_id: str, ttl: float = NODE_LEASE_TTL) -> None:
        self.store = store
        self.node_id = node_id
        self.ttl = ttl
        self.lease: Lease | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.lease = await self._acquire()
        self._task = asyncio.create_task(self._renew_loop(), name="node-lease")

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
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                renewed = (
                    await self.store.leases.renew(self.lease, self.ttl) if self.lease else None
                )
                if renewed is None:
                    log.warning("node lease for %s was lost; taking it again", self.node_id)
                    renewed = await self._acquire()
                self.lease = renewed
            except Exception:
                log.exception("renewing the node lease failed; will retry")

    async def alive(self) -> set[str]:
        """Node ids whose lease is unexpired right now."""
        holders = await self.store.leases.holders(NODE_PREFIX)
        return {lease.owner for lease in holders}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.store.leases.release(self.lease)
            self.lease = None


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings = app.state.settings
    node = NodeLiveness(app.state.store, settings.node_id, settings.node_ttl)
    await node.start()
    app.state.node = node
    try:
        yield
    finally:
        await node.stop()
