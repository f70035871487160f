"""Node liveness: each serving process holds the lease `node:<node_id>` while it runs.

Other nodes on the same log read the live holders to tell which nodes are alive;
a node whose lease expired (SIGKILL, partition, long pause) is dead to them, and
its work can be adopted. A restarted node with the same stable `--node-id` takes
its lease back at once (same owner), as APScheduler 4 advises.

Same owner also let a SECOND live process with that id (a copied unit file, a
blue/green deploy) take the lease silently: both ran the node's timers and stopping
either released the other's lease. So each process also holds `node-instance:<id>`
under its own instance token (`Instance`), and a process whose id is held by another
live instance refuses to start (`NodeIdInUse`). A holder that is dead is taken over:
at once when it ran on this machine and its pid is gone, else once its lease expires
unrenewed (at most the ttl); a holder that renews meanwhile is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from api.core.supervisor import RestartPolicy, Supervisor
from api.core.tasks import stop_task
from eventstore import EventStore, InvalidEvent, StoreUnavailable, open_store
from eventstore.leases import MAX_LEASE_NAME, Lease, Leases
from projections.errors import DomainError
from projections.ownership import decide_adopt, needs_adoption

if TYPE_CHECKING:
    from api.core.service import SessionService

log = logging.getLogger("hivelog.nodes")

NODE_LEASE_TTL = 10.0
NODE_PREFIX = "node:"
INSTANCE_PREFIX = "node-instance:"  # not under NODE_PREFIX: `alive()` reads only node leases
FIRE_CLAIM_PREFIX = "fire:"  # the scheduler's per-session fire claims (api/core/scheduler.py)


def node_lease_name(node_id: str) -> str:
    return f"{NODE_PREFIX}{node_id}"


def instance_lease_name(node_id: str) -> str:
    """Hashed when the id is too long to follow the prefix: every id that fits in a
    node lease name has an instance lease too."""
    name = f"{INSTANCE_PREFIX}{node_id}"
    if len(name) <= MAX_LEASE_NAME:
        return name
    return f"{INSTANCE_PREFIX}sha256:{hashlib.sha256(node_id.encode(errors='replace')).hexdigest()}"


class NodeIdInUse(Exception):
    """Another live process holds this node id: serving as well would run its timers twice."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One process, as the owner of its `node-instance:` lease: `host:pid:started:place`.

    `place` names this kernel boot and pid namespace (empty where unknown), so a pid is
    looked up only where it means the same process; `started` (the process's start
    time in clock ticks since boot) tells a reused pid from the process that held it.
    """

    host: str
    pid: int
    started: str
    place: str

    @property
    def token(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}:{self.place}"

    @classmethod
    def parse(cls, token: str) -> Instance | None:
        host, sep, rest = token.partition(":")
        parts = rest.split(":")
        if not sep or len(parts) != 3 or not parts[0].isdigit():
            return None
        return cls(host, int(parts[0]), parts[1], parts[2])


def _process_started(pid: int) -> str | None:
    """Start time of process `pid` (Linux /proc), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _place() -> str:
    """This kernel boot and pid namespace, hashed; empty where /proc cannot say."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return hashlib.sha256(f"{boot}/{pid_ns}".encode()).hexdigest()[:16]


@functools.cache
def _instance_of(pid: int) -> Instance:
    started = _process_started(pid)
    place = _place() if started is not None else ""
    return Instance(socket.gethostname(), pid, started or f"t{time.time():.6f}", place)


def this_instance() -> Instance:
    """This process (computed again in a forked child, whose pid differs)."""
    return _instance_of(os.getpid())


def is_gone(token: str) -> bool:
    """Whether the holder `token` is a process of this machine that no longer runs.
    False when it cannot tell (another machine or pid namespace, unknown format)."""
    holder, me = Instance.parse(token), this_instance()
    if holder is None or not me.place or (holder.host, holder.place) != (me.host, me.place):
        return False
    return _process_started(holder.pid) != holder.started


def _in_use(node_id: str, holder: Lease) -> NodeIdInUse:
    return NodeIdInUse(
        f"node id {node_id!r} is in use by another live process ({holder.owner}: "
        "host:pid:start:place); two processes with one node id would both run its "
        "sessions' timers. Give this one a unique --node-id (HIVELOG_NODE_ID) or stop the other"
    )


async def claim_instance(leases: Leases, node_id: str, ttl: float) -> Lease:
    """Take `node-instance:<node_id>` for this process, or raise NodeIdInUse.

    A holder that is another process is watched: renewed (or taken by a third) means
    alive, refused at once; expired unrenewed means dead, taken, at most `ttl` later.
    A holder of this machine whose process is gone is released and taken at once."""
    if not node_id or len(node_lease_name(node_id)) > MAX_LEASE_NAME:
        raise InvalidEvent(f"node id must be 1-{MAX_LEASE_NAME - len(NODE_PREFIX)} characters")
    name, me = instance_lease_name(node_id), this_instance().token
    poll = min(0.25, ttl / 10)
    deadline = time.monotonic() + 2 * ttl + 1  # until a holder is seen: a bound, not a wait
    seen: Lease | None = None
    while True:
        lease = await leases.acquire(name, me, ttl)
        if lease is not None:
            return lease
        holder = next((h for h in await leases.holders(name) if h.name == name), None)
        if holder is not None and is_gone(holder.owner):
            log.warning(
                "node %s: its previous process %s is gone; taking over", node_id, holder.owner
            )
            await leases.release(holder)
            continue
        if holder is not None and seen is not None and holder != seen:
            raise _in_use(node_id, holder)
        if time.monotonic() > deadline:
            raise _in_use(node_id, holder or seen or Lease(name, "?", 0, 0.0))
        if seen is None and holder is not None:
            # its expiry (it may run with another ttl), plus our ttl for clock skew
            left = max(holder.expires_at - time.time(), 0.0)
            deadline = time.monotonic() + left + ttl + 1
            log.warning(
                "node %s is held by %s; waiting up to %.0f s for it to expire",
                node_id,
                holder.owner,
                left,
            )
        seen = holder or seen
        await asyncio.sleep(poll)


async def claim_node_id(db_url: str, node_id: str, ttl: float) -> None:
    """`hivelog serve`'s check before uvicorn starts: `claim_instance` on its own store
    connection, so a refusal is a clear message and exit code, not a failed lifespan.
    The lease stays held; the app's NodeLiveness takes it again under the same token.
    A store refusing writes (full disk) is left to the app, which then serves reads."""
    try:
        store = await open_store(db_url)
        try:
            await claim_instance(store.leases, node_id, ttl)
        finally:
            await store.close()
    except StoreUnavailable as exc:
        log.warning("node id %s not checked before serving: %s", node_id, exc)


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
        self.instance: Lease | None = None  # this process's hold on the node id
        self.displaced = False  # another process took the node id while this one paused
        self._task: asyncio.Task[None] | None = None
        self._adopter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Raises NodeIdInUse when another live process holds this node id."""
        try:
            self.instance = await claim_instance(self.store.leases, self.node_id, self.ttl)
            self.lease = await self._acquire()
        except StoreUnavailable as exc:  # full disk: serve reads; the renew loop retries
            self.supervisor.incidents.refused_write(exc)
        # restarts well inside the lease's time to live
        policy = RestartPolicy(max_seconds=self.ttl / 3)
        self._task = self.supervisor.spawn(
            "node_lease", self._renew_loop, policy=policy, probe=self._lease_report
        )

    def _lease_report(self) -> str | None:
        if self.displaced:
            return f"node id {self.node_id} is held by another process; this one stands aside"
        if self.lease is None:
            return f"node {self.node_id} does not hold its liveness lease"
        return None

    async def _hold_instance(self) -> bool:
        """Renew this process's hold on the node id, or take it again if it lapsed (a
        pause longer than the ttl, a store refusing writes at start). False when another
        process took the id meanwhile: then this one must not hold or release the node
        lease, whose owner and fence that process now shares."""
        leases = self.store.leases
        renewed = await leases.renew(self.instance, self.ttl) if self.instance else None
        if renewed is None:  # an acquire refused means another process holds it unexpired
            name = instance_lease_name(self.node_id)
            renewed = await leases.acquire(name, this_instance().token, self.ttl)
            if renewed is None and not self.displaced:
                log.error(
                    "node id %s is held by another process (taken while this one was paused "
                    "or could not write); this one gives up its liveness lease",
                    self.node_id,
                )
        self.instance = renewed
        self.displaced = renewed is None
        return renewed is not None

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
            if not await self._hold_instance():
                self.lease = None
                continue
            renewed = await self.store.leases.renew(self.lease, self.ttl) if self.lease else None
            if renewed is None:
                log.warning("node lease for %s was lost; taking it again", self.node_id)
                renewed = await self._acquire()
            self.lease = renewed
            if renewed is not None:  # a durable write went through
                self.supervisor.incidents.recovered()

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

    async def stop_adopting(self) -> None:
        """Stop adopting other nodes' sessions (before the session service stops)."""
        await stop_task(self._adopter)
        self._adopter = None

    async def stop(self) -> None:
        await self.stop_adopting()
        await stop_task(self._task)
        self._task = None
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.store.leases.release(self.lease)
            self.lease = None
        if self.instance is not None:  # a restart then comes up at once, wherever it runs
            with contextlib.suppress(Exception):
                await self.store.leases.release(self.instance)
            self.instance = None
