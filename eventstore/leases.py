"""Leases: time-limited, fenced ownership of a name, shared by every node on one log.

Nodes use them for work that must run in one place at a time: a node's liveness
(`node:<id>`), and the claim on a trigger's due fires. A lease is granted when the
name is free, expired, or already held by the same owner; each change of owner
increments the *fence*, so a node that lost its lease (paused, partitioned) can
tell, and its late writes can be refused (APScheduler 4's acquired_by/until,
KurrentDB's fencing; anchors.md §9.9). Clocks: PostgreSQL uses the server's clock,
so nodes with skewed clocks agree; SQLite (one machine) uses the local wall clock.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from .types import InvalidEvent, encodable_text

MAX_LEASE_NAME = 256


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: who holds `name`, under which fence, until when (epoch seconds)."""

    name: str
    owner: str
    fence: int
    expires_at: float


def validate_lease_args(names: Sequence[str], owner: str, ttl: float) -> None:
    """Names and owner are text keys on both backends: `encodable_text` refuses what
    either cannot hold (a lone surrogate; NUL, which PostgreSQL text cannot)."""
    for name in names:
        if not isinstance(name, str) or not name or len(name) > MAX_LEASE_NAME:
            raise InvalidEvent(f"lease name must be 1-{MAX_LEASE_NAME} characters")
        encodable_text(name, "lease name")
    if not isinstance(owner, str) or not owner:
        raise InvalidEvent("lease owner must be a non-empty string")
    encodable_text(owner, "lease owner")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= 86_400:
        raise InvalidEvent("lease ttl must be a number of seconds in (0, 86400]")


class Leases(abc.ABC):
    """The lease table of one store."""

    @abc.abstractmethod
    async def claim(self, names: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        """Take every lease in `names` that is free, expired or already ours.

        Names held by a live other owner (or locked by a concurrent claim) are
        skipped, not waited for. Returns the leases granted, with their fences.
        """

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        granted = await self.claim([name], owner, ttl)
        return granted[0] if granted else None

    @abc.abstractmethod
    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend a lease we still hold under the same fence; None if it was lost."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the lease up at once (only if still held under its fence)."""

    @abc.abstractmethod
    async def holders(self, prefix: str = "") -> list[Lease]:
        """Every unexpired lease whose name starts with `prefix`."""

    @abc.abstractmethod
    async def settle(self) -> None:
        """Let calls still in flight finish before the store closes."""

    @abc.abstractmethod
    async def is_current(self, lease: Lease) -> bool:
        """Whether `lease` is still held, unexpired, under its fence (check before acting)."""
