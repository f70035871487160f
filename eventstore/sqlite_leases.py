"""Leases on SQLite: rows in the `leases` table, written through the store's writer.

Every change goes through the single writer (in the group-commit transaction), so
claims from tasks of one process and from other processes on the same file are
serialised by SQLite's write lock. Time is this machine's wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .leases import Lease, Leases, validate_lease_args
from .sqlite_batch import BatchContext, Fetch, Submit


class SQLiteLeases(Leases):
    """Given the store's `_submit` (writer jobs) and `_fetch` (reads), not the store itself."""

    def __init__(self, submit: Submit, fetch: Fetch) -> None:
        self._submit = submit
        self._fetch = fetch

    async def claim(self, names: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        validate_lease_args(names, owner, ttl)
        wanted = list(dict.fromkeys(names))

        def job(ctx: BatchContext) -> list[Lease]:
            now = time.time()
            until = now + ttl
            granted = []
            for name in wanted:
                row = ctx.conn.execute(
                    "SELECT owner, fence, expires_at FROM leases WHERE name = ?", (name,)
                ).fetchone()
                if row is None:
                    fence = 1
                    ctx.conn.execute(
                        "INSERT INTO leases (name, owner, fence, expires_at) VALUES (?, ?, ?, ?)",
                        (name, owner, fence, until),
                    )
                elif row[0] == owner and row[2] > now:
                    fence = row[1]
                    ctx.conn.execute(
                        "UPDATE leases SET expires_at = ? WHERE name = ?", (until, name)
                    )
                elif row[2] <= now:
                    fence = row[1] + 1
                    ctx.conn.execute(
                        "UPDATE leases SET owner = ?, fence = ?, expires_at = ? WHERE name = ?",
                        (owner, fence, until, name),
                    )
                else:
                    continue
                granted.append(Lease(name, owner, fence, until))
            return granted

        return await self._submit(job)

    async def settle(self) -> None:
        """Nothing of its own in flight: its calls are writer jobs, which closing drains."""

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        validate_lease_args([lease.name], lease.owner, ttl)

        def job(ctx: BatchContext) -> Lease | None:
            until = time.time() + ttl
            updated = ctx.conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND fence = ?",
                (until, lease.name, lease.owner, lease.fence),
            ).rowcount
            return Lease(lease.name, lease.owner, lease.fence, until) if updated else None

        return await self._submit(job)

    async def release(self, lease: Lease) -> None:
        def job(ctx: BatchContext) -> None:
            ctx.conn.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ? AND fence = ?",
                (lease.name, lease.owner, lease.fence),
            )

        await self._submit(job)

    async def holders(self, prefix: str = "") -> list[Lease]:
        rows = await self._fetch(
            "SELECT name, owner, fence, expires_at FROM leases "
            "WHERE substr(name, 1, ?) = ? AND expires_at > ? ORDER BY name",
            (len(prefix), prefix, time.time()),
        )
        return [Lease(*row) for row in rows]

    async def is_current(self, lease: Lease) -> bool:
        rows = await self._fetch(
            "SELECT 1 FROM leases WHERE name = ? AND owner = ? AND fence = ? AND expires_at > ?",
            (lease.name, lease.owner, lease.fence, time.time()),
        )
        return bool(rows)
