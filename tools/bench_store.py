"""`hivelog bench store`: append and tail speed, each against a baseline run side by side.

Rows (every figure a median of repetitions within this one run):
  - single-writer durable appends vs one aiosqlite commit per event (same file system,
    same pragmas: WAL, synchronous=FULL);
  - 32 concurrent single-event writers with group commit vs that baseline (target >= 10x);
  - tail(2000) + exact total on 10k / 100k / 1M-event streams (target 1M/10k <= 1.3x);
  - the same tails by hive's own JSONL algorithm on the same events written as
    events.jsonl (target: hivelog >= 50x faster at 1M).
With `--db postgresql://...` the append and tail rows are measured for that store too,
plus 1 / 32 / 128 concurrent single-event writers on PostgreSQL against SQLite's 32
writers measured interleaved in the same run, two nodes x 16 writers vs one x 32, and
the floors beside them (tools/bench_floors.py: a bare durable group commit on each
backend, with none of the log's guarantees: how far any implementation could get here).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from eventstore import EventStore, NewEvent, open_store
from tools.bench_floors import drop_pg_floor, pg_floor_appends, sqlite_floor_appends
from tools.bench_table import Row, show
from tools.hive_tail import read_events_tail

TAIL_N = 2000
BUILD_BATCH = 10_000
# Every stream this run writes carries this prefix, so a second run on the same
# PostgreSQL database measures fresh streams instead of tripping over the first run's.
RUN = f"run{time.time_ns():x}"


def envelope(i: int, session: str = "bench") -> dict[str, Any]:
    """A hive-shaped event of about 280 bytes, like a real session's log line."""
    return {
        "type": "llm_turn_complete",
        "stream_id": "queen",
        "node_id": "queen",
        "execution_id": f"exec-{i // 100:08d}",
        "data": {
            "stop_reason": "end_turn",
            "model": "model-x",
            "input_tokens": 1200 + i % 97,
            "output_tokens": 300 + i % 13,
            "cost_usd": 0.0042,
            "iteration": i,
        },
        "timestamp": "2026-11-24T12:00:00.000000+00:00",
        "correlation_id": None,
        "colony_id": session,
    }


# ---- appends -------------------------------------------------------------------------


async def hivelog_appends(store: EventStore, writers: int, per_writer: int, tag: str) -> float:
    """events/s for `writers` tasks each appending `per_writer` single events."""

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await store.append(f"{RUN}-{tag}-w{w}", [NewEvent("tick", envelope(i))])

    started = time.perf_counter()
    await asyncio.gather(*[writer(w) for w in range(writers)])
    return writers * per_writer / (time.perf_counter() - started)


async def baseline_appends(path: Path, writers: int, per_writer: int) -> float:
    """events/s with one aiosqlite INSERT + COMMIT per event (WAL, synchronous=FULL)."""
    conn = await aiosqlite.connect(path)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, stream_id TEXT, "
        "version INTEGER, type TEXT, data BLOB, UNIQUE (stream_id, version))"
    )
    await conn.commit()
    lock = asyncio.Lock()  # one commit per event: no task's commit may cover another's insert
    versions: dict[str, int] = {}

    async def writer(w: int) -> None:
        stream = f"base-{time.monotonic_ns()}-w{w}"
        for i in range(per_writer):
            async with lock:
                versions[stream] = versions.get(stream, 0) + 1
                await conn.execute(
                    "INSERT INTO events (stream_id, version, type, data) VALUES (?, ?, ?, ?)",
                    (stream, versions[stream], "tick", orjson.dumps(envelope(i))),
                )
                await conn.commit()

    started = time.perf_counter()
    await asyncio.gather(*[writer(w) for w in range(writers)])
    elapsed = time.perf_counter() - started
    await conn.close()
    return writers * per_writer / elapsed


async def append_rows(store: EventStore, label: str, base_dir: Path, quick: bool) -> list[Row]:
    reps = 3
    single_n = 300 if quick else 1000
    conc_per = 30 if quick else 100
    singles, single_bases, concs, conc_bases = [], [], [], []
    for rep in range(reps):  # interleaved, so noise hits both sides alike
        singles.append(await hivelog_appends(store, 1, single_n, f"single-{rep}"))
        single_bases.append(await baseline_appends(base_dir / "baseline.db", 1, single_n))
        concs.append(await hivelog_appends(store, 32, conc_per, f"conc-{rep}"))
        conc_bases.append(await baseline_appends(base_dir / "baseline.db", 32, conc_per))
    s, sb = statistics.median(singles), statistics.median(single_bases)
    c, cb = statistics.median(concs), statistics.median(conc_bases)
    return [
        Row(f"{label}: 1 writer, durable single-event appends", s, "events/s", sb, s / sb),
        Row(
            f"{label}: 32 concurrent single-event writers" + " (group commit)",
            c,
            "events/s",
            cb,
            c / cb,
            ">= 10x" if label == "sqlite" else "",
            c / cb >= 10 if label == "sqlite" else None,
        ),
    ]


# ---- tails ---------------------------------------------------------------------------


async def build_stream(store: EventStore, stream: str, size: int) -> None:
    for start in range(0, size, BUILD_BATCH):
        count = min(BUILD_BATCH, size - start)
        await store.append(stream, [NewEvent("tick", envelope(start + k)) for k in range(count)])


def write_jsonl(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for start in range(0, size, BUILD_BATCH):
            f.write(
                b"".join(
                    orjson.dumps(envelope(i)) + b"\n"
                    for i in range(start, min(size, start + BUILD_BATCH))
                )
            )


async def tail_rows(
    store: EventStore, label: str, base_dir: Path, sizes: list[int], reps: int, with_hive: bool
) -> list[Row]:
    """Build every stream first, then time the sizes round-robin so noise hits all alike."""
    for size in sizes:
        await build_stream(store, f"{RUN}-tail-{size}", size)
        page = await store.tail(f"{RUN}-tail-{size}", TAIL_N)
        assert page.total == size and len(page.events) == min(size, TAIL_N)

    async def served(size: int) -> None:  # what GET …/events/history does: bytes, no decode
        await store.tail_json(f"{RUN}-tail-{size}", TAIL_N)

    async def full(size: int) -> None:  # the Python API: RecordedEvent objects
        await store.tail(f"{RUN}-tail-{size}", TAIL_N)

    async def decoded(size: int) -> None:  # for contrast: every event decoded to a dict
        for event in (await store.tail(f"{RUN}-tail-{size}", TAIL_N)).events:
            orjson.loads(event.data_json)

    raw_times: dict[int, list[float]] = {size: [] for size in sizes}
    full_times: dict[int, list[float]] = {size: [] for size in sizes}
    decoded_times: dict[int, list[float]] = {size: [] for size in sizes}
    for size in sizes:
        await served(size)  # warm
    for _ in range(reps):
        for size in sizes:
            raw_times[size].append(await timed(served, size))
            full_times[size].append(await timed(full, size))
            decoded_times[size].append(await timed(decoded, size))
    ours = {size: statistics.median(raw_times[size]) for size in sizes}
    ours_full = {size: statistics.median(full_times[size]) for size in sizes}
    ours_decoded = {size: statistics.median(decoded_times[size]) for size in sizes}

    hive: dict[int, float] = {}
    if with_hive:
        for size in sizes:
            jsonl = base_dir / f"events-{size}.jsonl"
            write_jsonl(jsonl, size)
            events, total, _ = read_events_tail(jsonl, TAIL_N)
            assert total == size and len(events) == min(size, TAIL_N)
            hive_reps = max(5, reps // 5) if size >= 1_000_000 else reps
            times = []
            for _ in range(hive_reps):
                started = time.perf_counter()
                read_events_tail(jsonl, TAIL_N)
                times.append(time.perf_counter() - started)
            hive[size] = statistics.median(times)
            jsonl.unlink()

    rows: list[Row] = []
    for size in sizes:
        at_1m = size >= 1_000_000
        if size in hive:
            rows.append(
                Row(
                    f"{label}: tail_json({TAIL_N}) + total (as served) vs hive, {size:,} events",
                    ours[size] * 1e3,
                    "ms",
                    hive[size] * 1e3,
                    hive[size] / ours[size],
                    ">= 50x at 1M" if at_1m else "",
                    hive[size] / ours[size] >= 50 if at_1m else None,
                )
            )
            rows.append(
                Row(
                    f"{label}: tail() as RecordedEvents vs hive, {size:,} events",
                    ours_full[size] * 1e3,
                    "ms",
                    hive[size] * 1e3,
                    hive[size] / ours_full[size],
                )
            )
            rows.append(
                Row(
                    f"{label}: tail() + orjson decode of every event vs hive, {size:,} events",
                    ours_decoded[size] * 1e3,
                    "ms",
                    hive[size] * 1e3,
                    hive[size] / ours_decoded[size],
                )
            )
        else:
            rows.append(
                Row(
                    f"{label}: tail_json({TAIL_N}) + total, {size:,} events", ours[size] * 1e3, "ms"
                )
            )
            rows.append(
                Row(
                    f"{label}: tail({TAIL_N}) + total, {size:,} events", ours_full[size] * 1e3, "ms"
                )
            )
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        growth = ours[big] / ours[small]
        rows.append(
            Row(
                f"{label}: tail cost growth {big:,} vs {small:,} events",
                growth,
                "x",
                None,
                None,
                "<= 1.3x",
                growth <= 1.3,
            )
        )
    return rows


async def timed(fn: Callable[[int], Awaitable[None]], arg: int) -> float:
    started = time.perf_counter()
    await fn(arg)
    return time.perf_counter() - started


# ---- driver --------------------------------------------------------------------------


async def measure(url: str | None, quick: bool, base_dir: Path) -> list[Row]:
    sizes = [10_000, 100_000, 1_000_000]
    reps = 15 if quick else 50
    rows: list[Row] = []
    sqlite_store = await open_store(f"sqlite:///{base_dir / 'hivelog-bench.db'}")
    try:
        rows += await append_rows(sqlite_store, "sqlite", base_dir, quick)
        rows += await tail_rows(sqlite_store, "sqlite", base_dir, sizes, reps, with_hive=True)
    finally:
        await sqlite_store.close()
    if url and url.startswith(("postgresql://", "postgres://")):
        # SQLite's side of the comparison on a fresh file, as fresh as the PostgreSQL schema
        # (the file above now holds the 1.1M tail events, which slows its inserts).
        sqlite_fresh = await open_store(f"sqlite:///{base_dir / 'hivelog-vs-pg.db'}")
        try:
            rows += await postgres_rows(url, sqlite_fresh, base_dir, quick, sizes, reps)
        finally:
            await sqlite_fresh.close()
    return rows


async def postgres_rows(
    url: str, sqlite_store: EventStore, base_dir: Path, quick: bool, sizes: list[int], reps: int
) -> list[Row]:
    pg = await open_store(url)
    second = await open_store(url)  # a second node: its own pool and LISTEN connection
    try:
        rows = await append_rows(pg, "postgresql", base_dir, quick)
        rows += await writers_vs_sqlite(pg, sqlite_store, quick)
        rows += await two_nodes_row(pg, second, 30 if quick else 100)
        rows += await floor_rows(url, pg, sqlite_store, base_dir, quick)
        pg_sizes = [10_000, 100_000] if quick else sizes
        rows += await tail_rows(pg, "postgresql", base_dir, pg_sizes, reps, with_hive=False)
    finally:
        await second.close()
        await pg.close()
    return rows


async def floor_rows(
    url: str, pg: EventStore, sqlite_store: EventStore, base_dir: Path, quick: bool
) -> list[Row]:
    """The floors (tools/bench_floors.py) beside hivelog's stores, 32 single-event writers,
    interleaved: a bare durable group commit on each backend, PostgreSQL's with one
    commit connection and with two (two nodes' worth), and each store against its own
    backend's floor (what the log's guarantees cost)."""
    per_writer = 100 if quick else 300
    names = ("sqlite floor", "pg floor", "pg floor 2x16", "sqlite", "postgresql")
    runs: dict[str, list[float]] = {name: [] for name in names}
    try:
        for rep in range(3):
            tag = f"{RUN}-floor-{rep}"
            runs["sqlite floor"].append(
                await sqlite_floor_appends(base_dir / "floor.db", 32, per_writer, tag, _payload)
            )
            runs["pg floor"].append(await pg_floor_appends(url, 32, per_writer, tag, _payload))
            runs["pg floor 2x16"].append(
                await pg_floor_appends(url, 32, per_writer, f"{tag}-two", _payload, 2)
            )
            runs["sqlite"].append(await hivelog_appends(sqlite_store, 32, per_writer, tag))
            runs["postgresql"].append(await hivelog_appends(pg, 32, per_writer, tag))
    finally:
        await drop_pg_floor(url)
    m = {name: statistics.median(values) for name, values in runs.items()}

    def row(name: str, value: float, base: float) -> Row:
        return Row(name, value, "events/s", base, value / base, "reference")

    return [
        row("floor: bare postgresql group commit vs bare sqlite's, 32 writers",
            m["pg floor"], m["sqlite floor"]),
        row("floor: bare postgresql group commit, two connections x 16 writers vs one x 32",
            m["pg floor 2x16"], m["pg floor"]),
        row("sqlite: 32 writers vs bare sqlite group commit (what the log's guarantees cost)",
            m["sqlite"], m["sqlite floor"]),
        row("postgresql: 32 writers vs bare postgresql group commit (the same)",
            m["postgresql"], m["pg floor"]),
    ]  # fmt: skip


def _payload(i: int) -> bytes:
    return orjson.dumps(envelope(i))


async def writers_vs_sqlite(pg: EventStore, sqlite_store: EventStore, quick: bool) -> list[Row]:
    """PostgreSQL 1 / 32 / 128 single-event writers, each vs SQLite's 32 (interleaved)."""
    per_writer = 100 if quick else 300
    counts = (1, 32, 128)
    figures: dict[int, list[float]] = {n: [] for n in counts}
    sqlite_32: list[float] = []
    for rep in range(3):
        sqlite_32.append(await hivelog_appends(sqlite_store, 32, per_writer, f"vs-pg-{rep}"))
        for n in counts:
            each = per_writer * 5 if n == 1 else per_writer
            figures[n].append(await hivelog_appends(pg, n, each, f"pg{n}-{rep}"))
    base = statistics.median(sqlite_32)
    rows = []
    for n in counts:
        value = statistics.median(figures[n])
        rows.append(
            Row(
                f"postgresql: {n} concurrent single-event writer{'s' if n > 1 else ''} "
                "vs sqlite's 32 (both group commit)",
                value,
                "events/s",
                base,
                value / base,
                ">= 1.0x" if n == 32 else "",
                value / base >= 1.0 if n == 32 else None,
            )
        )
    return rows


async def two_nodes_row(one: EventStore, other: EventStore, per_writer: int) -> list[Row]:
    """32 single-event writers on one node vs 16 + 16 on two nodes sharing the log."""
    singles, pairs = [], []
    for rep in range(3):
        singles.append(await hivelog_appends(one, 32, per_writer, f"one-node-{rep}"))
        started = time.perf_counter()
        await asyncio.gather(
            hivelog_appends(one, 16, per_writer, f"node-a-{rep}"),
            hivelog_appends(other, 16, per_writer, f"node-b-{rep}"),
        )
        pairs.append(32 * per_writer / (time.perf_counter() - started))
    one_node, two = statistics.median(singles), statistics.median(pairs)
    return [
        Row(
            "postgresql: 32 writers on two nodes (16 + 16) vs on one node",
            two,
            "events/s",
            one_node,
            two / one_node,
            ">= 1.0x",
            two / one_node >= 1.0,
        )
    ]


def run(args: argparse.Namespace) -> int:
    base_dir = (
        Path(args.store_dir) if args.store_dir else Path(tempfile.mkdtemp(prefix="hivelog-bench-"))
    )
    base_dir.mkdir(parents=True, exist_ok=True)
    try:
        rows = asyncio.run(measure(args.db, args.quick, base_dir))
    finally:
        if not args.store_dir:
            shutil.rmtree(base_dir, ignore_errors=True)
    show(
        rows,
        "hivelog bench store (medians; ratio = hivelog vs baseline, same run)",
        as_json=args.json,
        footer=(
            "baselines: appends = one aiosqlite INSERT+COMMIT per event (WAL, synchronous=FULL);",
            "tails = hive's _read_events_tail on the same events as events.jsonl (warm cache).",
        ),
    )
    return 0
