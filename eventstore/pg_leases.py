"""Leases on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED`, timed by the server clock.

A claim first makes sure a row exists for every name (one statement inserting only
the names missing), then, in ONE statement, locks the rows that are free, expired or
ours, skipping rows another node is claiming at this instant (never waiting on them),
and takes them, bumping the fence on a change of owner. Both are autocommit
statements: no lock is held across a round trip, so a node paused (SIGSTOP) or cut off
mid-claim cannot make other nodes' claims wait on its rows (a transaction around the
two did: a row it had claimed but not committed made every other node's seed of that
name wait, and with the coalesced claims, every fire of that node). The server's
`clock_timestamp()` is the only clock, so nodes whose clocks disagree still agree on
who holds what.

Single-name `acquire` and `release` calls made at the same time are coalesced
(eventstore/coalesce.py): the scheduler claims one lease per session it fires, and
a round of 1,000 fires then costs a few transactions, not 2,000, so the pool stays
free for everything else. Names are claimed in sorted order, so two nodes seeding
overlapping rows lock them in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .coalesce import Coalescer
from .leases import Lease, Leases, validate_lease_args
from .postgres import pool_execute, pool_fetch, pool_fetchrow

MAX_COALESCED = 512  # names per coalesced claim or release


class PostgresLeases(Leases):
    def __init__(self, pool: Any, schema_q: str) -> None:
        self._pool = pool
        self._acquires: Coalescer[tuple[str, str, float], Lease | None] = Coalescer(
            self._acquire_many, MAX_COALESCED, "hivelog-pg-lease-claims"
        )
        self._releases: Coalescer[Lease, None] = Coalescer(
            self._release_many, MAX_COALESCED, "hivelog-pg-lease-releases"
        )
        t = f"{schema_q}.leases"
        # Only names with no row: an INSERT that meets an existing row, even with ON
        # CONFLICT DO NOTHING, waits for whoever holds that row locked.
        self._sql_seed = (
            f"INSERT INTO {t} (name, owner, fence, expires_at) "
            "SELECT n, '', 0, '-infinity' FROM unnest($1::text[]) AS n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {t} AS x WHERE x.name = n) "
            "ON CONFLICT DO NOTHING"
        )
        self._sql_claim = (
            f"WITH free AS (SELECT name, owner, fence FROM {t} WHERE name = ANY($1::text[]) "
            "AND (expires_at <= clock_timestamp() OR owner = $2) FOR UPDATE SKIP LOCKED) "
            f"UPDATE {t} AS l SET owner = $2, "
            "fence = CASE WHEN free.owner = $2 AND l.expires_at > clock_timestamp() "
            "THEN l.fence ELSE l.fence + 1 END, "
            "expires_at = clock_timestamp() + make_interval(secs => $3) "
            "FROM free WHERE l.name = free.name "
            "RETURNING l.name, l.owner, l.fence, extract(epoch FROM l.expires_at)::float8"
        )
        self._sql_renew = (
            f"UPDATE {t} SET expires_at = clock_timestamp() + make_interval(secs => $4) "
            "WHERE name = $1 AND owner = $2 AND fence = $3 "
            "RETURNING name, owner, fence, extract(epoch FROM expires_at)::float8"
        )
        self._sql_release = (
            f"UPDATE {t} AS l SET expires_at = '-infinity' "
            "FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(name, owner, fence) "
            "WHERE l.name = r.name AND l.owner = r.owner AND l.fence = r.fence"
        )
        self._sql_holders = (
            "SELECT name, owner, fence, extract(epoch FROM expires_at)::float8 "
            f"FROM {t} WHERE starts_with(name, $1) AND expires_at > clock_timestamp() "
            "ORDER BY name"
        )
        self._sql_current = (
            f"SELECT 1 FROM {t} WHERE name = $1 AND owner = $2 AND fence = $3 "
            "AND expires_at > clock_timestamp()"
        )

    async def claim(self, names: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        validate_lease_args(names, owner, ttl)
        wanted = list(dict.fromkeys(names))
        granted = {lease.name: lease for lease in await self._claim_sorted(wanted, owner, ttl)}
        return [granted[name] for name in wanted if name in granted]

    async def _claim_sorted(self, names: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        wanted = sorted(set(names))
        await pool_execute(self._pool, self._sql_seed, wanted)
        rows = await pool_fetch(self._pool, self._sql_claim, wanted, owner, float(ttl))
        return [Lease(*row) for row in rows]

    async def settle(self) -> None:
        """Let coalesced claims and releases in flight finish (the store is closing)."""
        await self._acquires.settle()
        await self._releases.settle()

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        validate_lease_args([name], owner, ttl)
        return await self._acquires.submit((name, owner, float(ttl)))

    async def _acquire_many(self, wanted: list[tuple[str, str, float]]) -> list[Lease | None]:
        """One claim per (owner, ttl) among the coalesced acquires (almost always one)."""
        granted: dict[tuple[str, str], Lease] = {}
        for owner, ttl in dict.fromkeys((owner, ttl) for _, owner, ttl in wanted):
            names = [name for name, o, t in wanted if o == owner and t == ttl]
            for lease in await self._claim_sorted(names, owner, ttl):
                granted[(lease.name, owner)] = lease
        return [granted.get((name, owner)) for name, owner, _ in wanted]

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        validate_lease_args([lease.name], lease.owner, ttl)
        row = await pool_fetchrow(
            self._pool, self._sql_renew, lease.name, lease.owner, lease.fence, float(ttl)
        )
        return None if row is None else Lease(*row)

    async def release(self, lease: Lease) -> None:
        await self._releases.submit(lease)

    async def _release_many(self, leases: list[Lease]) -> list[None]:
        names = [lease.name for lease in leases]
        owners = [lease.owner for lease in leases]
        fences = [lease.fence for lease in leases]
        await pool_execute(self._pool, self._sql_release, names, owners, fences)
        return [None] * len(leases)

    async def holders(self, prefix: str = "") -> list[Lease]:
        if "\x00" in prefix:
            return []  # no name holds NUL (validate_lease_args), and PostgreSQL cannot
        rows = await pool_fetch(self._pool, self._sql_holders, prefix)
        return [Lease(*row) for row in rows]

    async def is_current(self, lease: Lease) -> bool:
        row = await pool_fetchrow(
            self._pool, self._sql_current, lease.name, lease.owner, lease.fence
        )
        return row is not None
