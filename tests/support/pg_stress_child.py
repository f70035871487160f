"""Child process for the PostgreSQL stress test: one of many concurrent writers.

Usage: python -m tests.support.pg_stress_child URL WRITER_NO ROUNDS TASKS
Each of TASKS coroutines does ROUNDS steps, cycling through: an ordinary append
to a shared hot stream, an append with a (possibly stale) expected version, and a
hand-made transaction that calls the append function, works for a few ms while
holding the append lock, then commits or rolls back. At the end it prints one
JSON line: the ids it knows committed ("acked") and rolled back ("rolled_back").
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import orjson

from eventstore import NewEvent, WrongExpectedVersion
from eventstore.postgres import PostgresStore


class Rollback(Exception):
    """Raised inside a transaction to roll it back on purpose."""


async def task(store: PostgresStore, writer: int, n: int, rounds: int, out: dict[str, Any]) -> None:
    sql = f"SELECT status FROM {store.names.q}.append_events($1, -1, $2, $3, $4, $5)"
    for step in range(rounds):
        stream = f"hot-{(writer + n + step) % 4}"
        ids = [str(uuid.uuid4()) for _ in range(1 + step % 3)]
        data = {"w": writer, "t": n, "step": step}
        events = [NewEvent("tick", {**data, "k": k}, event_id=i) for k, i in enumerate(ids)]
        kind = step % 3
        if kind == 0:
            await store.append(stream, events)
            out["acked"].extend(ids)
        elif kind == 1:
            info = await store.stream_info(stream)
            try:
                await store.append(stream, events, expected=info.head_version if info else 0)
                out["acked"].extend(ids)
            except WrongExpectedVersion:
                out["conflicts"] += 1
        else:
            payload = [orjson.dumps({**data, "k": k}) for k in range(len(ids))]
            commit = step % 4 != 2
            try:
                async with store.pool.acquire() as conn, conn.transaction():
                    (status,) = await conn.fetchrow(
                        sql, stream, ids, ["raw"] * len(ids), payload, [None] * len(ids)
                    )
                    assert status == 0
                    await asyncio.sleep((step % 4) / 1000)  # work while holding the lock
                    if not commit:
                        raise Rollback
            except Rollback:
                out["rolled_back"].extend(ids)
            else:
                out["acked"].extend(ids)


async def main(url: str, writer: int, rounds: int, tasks: int) -> None:
    store = await PostgresStore.open(url)
    out: dict[str, Any] = {"acked": [], "rolled_back": [], "conflicts": 0}
    try:
        await asyncio.gather(*[task(store, writer, n, rounds, out) for n in range(tasks)])
    finally:
        await store.close()
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
