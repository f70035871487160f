"""What a job in the SQLite writer's group-commit transaction gets to see.

Its own module so the parts that submit jobs (the store, the lease table) share
these types without importing each other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .chain import GENESIS

T = TypeVar("T")


@dataclass
class BatchContext:
    """What jobs in one transaction share: the connection, the log head and chain head.

    `heads` caches streams' (head version, deleted) as committed, for appends; the
    writer keeps it between transactions and empties it whenever it may be stale.
    """

    conn: sqlite3.Connection
    last_position: int
    now_us: int
    chain_position: int = 0
    chain_hash: bytes = GENESIS
    erased: bool = False
    heads: dict[str, tuple[int, bool]] = field(default_factory=dict)


Job = Callable[[BatchContext], Any]


class Submit(Protocol):
    """Runs a job in the writer's next transaction (the store's `_submit`)."""

    async def __call__(self, job: Callable[[BatchContext], T]) -> T: ...


Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
