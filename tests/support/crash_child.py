"""Child process for the crash test: appends forever, printing each acknowledgement.

Usage: python -m tests.support.crash_child DB_URL WRITERS
Each writer appends batches of 3 events to its own streams; after `append`
returns, the child prints `ack <stream> <first> <last> <last_position> <ids>`
and flushes, so the parent knows exactly what was acknowledged before the kill.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from eventstore import NewEvent, open_store


async def writer(store: object, n: int, run: str) -> None:
    from eventstore import EventStore

    assert isinstance(store, EventStore)
    batch_no = 0
    while True:
        stream = f"w{n}-s{batch_no % 5}"
        ids = [str(uuid.uuid4()) for _ in range(3)]
        events = [
            NewEvent("tick", {"run": run, "w": n, "b": batch_no, "k": k}, event_id=i)
            for k, i in enumerate(ids)
        ]
        r = await store.append(stream, events)
        sys.stdout.write(
            f"ack {stream} {r.first_version} {r.last_version} {r.last_position} {','.join(ids)}\n"
        )
        sys.stdout.flush()
        batch_no += 1


async def main(url: str, writers: int) -> None:
    store = await open_store(url)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    run = uuid.uuid4().hex
    await asyncio.gather(*[writer(store, n, run) for n in range(writers)])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
