"""`hivelog bench http`: the HTTP read side, each figure against a baseline in the same run.

Rows:
  - GET …/events/history?limit=2000 on a session of 1M events (20k with --quick) vs a
    bare Starlette endpoint returning the very same bytes: what the store read and
    the splice cost on top of serving a 600 KB body at all;
  - append -> SSE delivery latency p50/p99 with 100 subscribers on the session (20
    with --quick) vs the durable append alone.
  - the same GET on 1,000 sessions of 2,000 events each (50 with --quick), a random
    session per request, vs the bare endpoint returning one such page: the cost where
    the page cache cannot help (it is sized to hold 1 in 10 of these pages);
  - the same GET revalidated (`If-None-Match` with its ETag -> 304, no body) vs the
    bare endpoint answering 304 too: what hive's frontend pays on every mount.
Every figure is the median of alternating rounds (ours, baseline, ours, ...: 5, or 2
with --quick), so the machine's noise falls on both alike.
Both servers run under uvicorn in this process on `hivelog serve`'s stack (its loop
and its protocol with the head guards, `tools.serve.STACK`, named in the table),
so the ratio compares like with like; the load comes from another
process: wrk when installed (`apt-get install wrk`), else a Python httpx loader
(named in the table; it is slower than wrk, so absolute req/s are lower, the ratio
still compares like with like). Subscribers run in a child process and time
delivery on the shared monotonic clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app import create_app
from api.core.settings import Settings
from eventstore import NewEvent, open_store, tail_array
from tools.bench_store import build_stream
from tools.serve import STACK, loop_factory, protocol_with_head_timeout

SESSION = "bench-session"
RANDOM_PREFIX = "bench-random-"
RANDOM_SESSIONS = 1000
SSE_SESSION = "sse-bench"
LIMIT = 2000


@dataclass
class Row:
    measurement: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None


# ---- servers in this process -------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=protocol_with_head_timeout(10.0),  # `hivelog serve`'s protocol
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(12_000):  # up to 10 min: the service folds the whole log (3M events) first
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        raise RuntimeError("server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_app(body: bytes, tag: str = "") -> Starlette:
    async def bare(request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def bare_304(request: Request) -> Response:
        return Response(status_code=304, headers={"ETag": tag})

    return Starlette(routes=[Route("/bare", bare), Route("/bare304", bare_304)])


# ---- load ------------------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


def _to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@dataclass(frozen=True)
class Target:
    """A URL, or a template with one `%d` filled with a random number below `choices`."""

    url: str
    choices: int = 0
    inm: str = ""  # If-None-Match on every request (the loader then expects 304)


def wrk_script(path_template: str, choices: int) -> Path:
    """A wrk Lua script asking for the template filled with a random number each time."""
    path = Path(tempfile.mkdtemp(prefix="hivelog-wrk-")) / "random.lua"
    path.write_text(
        "request = function()\n"
        f'  return wrk.format("GET", string.format("{path_template}", '
        f"math.random(0, {choices - 1})))\n"
        "end\n"
    )
    return path


async def wrk_load(target: Target, connections: int, seconds: float) -> Load:
    header = ["-H", f"If-None-Match: {target.inm}"] if target.inm else []
    url = target.url
    script: list[str] = []
    if target.choices:
        parts = httpx.URL(url.replace("%d", "0"))
        template = url[url.index("/", len(f"{parts.scheme}://")) :]
        script = ["-s", str(wrk_script(template, target.choices))]
        url = f"{parts.scheme}://{parts.host}:{parts.port}/"
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        *header,
        *script,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if not (rps and p50 and p99) or ("Non-2xx" in out and not target.inm):
        raise RuntimeError(f"wrk failed:\n{out}")
    return Load(float(rps.group(1)), _to_ms(*p50.groups()), _to_ms(*p99.groups()))


async def httpx_rounds(
    targets: list[Target], connections: int, seconds: float, rounds: int
) -> list[list[Load]]:
    """The httpx loader in its own process, alternating the targets round by round."""
    spec = orjson.dumps([t.__dict__ for t in targets]).decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench_http",
        "load",
        spec,
        str(connections),
        str(seconds),
        str(rounds),
        stdout=asyncio.subprocess.PIPE,
    )
    out = (await proc.communicate())[0]
    return [[Load(**r) for r in per_target] for per_target in orjson.loads(out)]


async def side_by_side(
    loader: str, targets: list[Target], connections: int, seconds: float, rounds: int
) -> list[Load]:
    """Each target loaded `rounds` times, alternating (A B A B ...), so the machine's
    noise falls on all alike; per target the median round (by throughput)."""
    if loader == "wrk":
        runs: list[list[Load]] = [[] for _ in targets]
        for _ in range(rounds):
            for i, target in enumerate(targets):
                runs[i].append(await wrk_load(target, connections, seconds))
    else:
        runs = await httpx_rounds(targets, connections, seconds, rounds)
    return [median_load(r) for r in runs]


def median_load(runs: list[Load]) -> Load:
    return Load(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
    )


async def child_load(target: Target, connections: int, seconds: float) -> dict[str, float]:
    """One round of the httpx loader (runs in its own process); with `inm`, each GET
    revalidates; with `choices`, each GET fills the template with a random number."""
    latencies: list[float] = []
    headers = {"If-None-Match": target.inm} if target.inm else {}
    expected = 304 if target.inm else 200
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    pick = random.Random(1)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                url = target.url % pick.randrange(target.choices) if target.choices else target.url
                t0 = time.perf_counter()
                r = await client.get(url, headers=headers)
                await r.aread()
                if r.status_code != expected:
                    raise RuntimeError(f"{url}: {r.status_code}")
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}


async def child_rounds(
    targets: list[Target], connections: int, seconds: float, rounds: int
) -> list[list[dict[str, float]]]:
    runs: list[list[dict[str, float]]] = [[] for _ in targets]
    for _ in range(rounds):
        for i, target in enumerate(targets):
            runs[i].append(await child_load(target, connections, seconds))
    return runs


# ---- SSE delivery --------------------------------------------------------------------------


async def child_subscribe(url: str, subscribers: int, count: int) -> None:
    """Open the streams, say "ready" once each saw the first event, then time `count` more."""
    latencies: list[int] = []
    ready = 0
    all_ready = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one() -> None:
            nonlocal ready
            seen = 0
            async with client.stream("GET", url) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    now = time.monotonic_ns()
                    sent = orjson.loads(line[6:])["data"].get("sent_ns")
                    if sent is None:
                        ready += 1
                        if ready == subscribers:
                            all_ready.set()
                        continue
                    latencies.append(now - sent)
                    seen += 1
                    if seen == count:
                        return

        tasks = [asyncio.create_task(one()) for _ in range(subscribers)]
        await asyncio.wait_for(all_ready.wait(), 120)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
    q = statistics.quantiles(latencies, n=100)
    summary = {"count": len(latencies), "p50_ns": q[49], "p99_ns": q[98]}
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    sys.stdout.flush()


def tick(sent_ns: int | None) -> NewEvent:
    data = {} if sent_ns is None else {"sent_ns": sent_ns}
    return NewEvent("bench_tick", {"type": "bench_tick", "stream_id": "queen", "data": data})


async def sse_rows(app: Starlette, base_url: str, subscribers: int, count: int) -> list[Row]:
    url = f"{base_url}/api/sessions/{SSE_SESSION}/events?types=*&after=0"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench_http",
        "subscribe",
        url,
        str(subscribers),
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    if (await asyncio.wait_for(proc.stdout.readline(), 180)).strip() != b"ready":
        raise RuntimeError("subscribers did not connect")
    store = app.state.parts.store
    appends: list[int] = []
    for _ in range(count):
        t0 = time.monotonic_ns()
        await store.append(SSE_SESSION, [tick(t0)])
        appends.append(time.monotonic_ns() - t0)
        await asyncio.sleep(0.02)  # latency, not throughput: one event in flight
    delivered = orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 300))
    await proc.wait()
    d50, d99 = delivered["p50_ns"], delivered["p99_ns"]
    a = statistics.quantiles(appends, n=100)
    label = f"append -> SSE delivery, {subscribers} subscribers ({delivered['count']:,} deliveries)"
    base = "durable append alone"
    return [
        Row(f"{label}: p50", d50 / 1e6, "ms", a[49] / 1e6, base, d50 / a[49]),
        Row(f"{label}: p99", d99 / 1e6, "ms", a[98] / 1e6, base, d99 / a[98]),
    ]


# ---- the run -----------------------------------------------------------------------------


async def measure(args: argparse.Namespace, base_dir: Path) -> list[Row]:
    quick = args.quick
    size = args.http_events or (20_000 if quick else 1_000_000)
    seconds = args.http_seconds or (3.0 if quick else 10.0)
    rounds = 2 if quick else 5  # each figure: this many alternating rounds, the median
    per_round = seconds / rounds
    sessions = args.http_sessions or (50 if quick else RANDOM_SESSIONS)
    subscribers = args.http_subscribers or (20 if quick else 100)
    count = args.http_sse_events or (50 if quick else 200)
    loader = args.http_loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "httpx"
    conns = args.http_connections

    db_url = f"sqlite:///{base_dir / 'bench-http.db'}"
    store = await open_store(db_url)
    try:
        print(f"building a {size:,}-event session ...", file=sys.stderr)
        await build_stream(store, SESSION, size)
        await store.append(SSE_SESSION, [tick(None)])
        print(f"building {sessions:,} sessions of {LIMIT:,} events ...", file=sys.stderr)
        for start in range(0, sessions, 50):
            names = [f"{RANDOM_PREFIX}{i}" for i in range(start, min(sessions, start + 50))]
            await asyncio.gather(*(build_stream(store, name, LIMIT) for name in names))
        page_bytes = len((await store.tail_array(f"{RANDOM_PREFIX}0", LIMIT)).array())
    finally:
        await store.close()

    # The page cache holds 1 in 10 of the random sessions' pages (its 64 MiB default is
    # about 1 in 10 of 1,000 pages); the hot session's page always fits.
    budget = max(4 * page_bytes, sessions * page_bytes // 10)
    tail_array.TAIL_CACHE_BYTES = budget
    cached_pages = min(sessions, budget // page_bytes)
    app = create_app(Settings(db_url=db_url, agents_roots=(base_dir,)))
    rows: list[Row] = []
    async with serve(app) as base_url:
        path = f"/api/sessions/{SESSION}/events/history?limit={LIMIT}"
        random_path = f"/api/sessions/{RANDOM_PREFIX}%d/events/history?limit={LIMIT}"
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.get(base_url + path)
            one = await client.get(base_url + random_path % 0)
        r.raise_for_status()
        one.raise_for_status()
        body = r.content
        tag = r.headers["etag"]
        assert orjson.loads(body)["returned"] == LIMIT
        assert orjson.loads(one.content)["returned"] == LIMIT
        async with (
            serve(bare_app(body, tag)) as bare_url,
            serve(bare_app(one.content)) as bare_random_url,
        ):
            hot, bare = Target(base_url + path), Target(bare_url + "/bare")
            await side_by_side(loader, [bare, hot], conns, 1.0, 1)  # warm-up
            ours, theirs = await side_by_side(loader, [hot, bare], conns, per_round, rounds)
            ours_304, theirs_304 = await side_by_side(
                loader,
                [Target(base_url + path, inm=tag), Target(bare_url + "/bare304", inm=tag)],
                conns,
                per_round,
                rounds,
            )
            ours_random, theirs_random = await side_by_side(
                loader,
                [Target(base_url + random_path, sessions), Target(bare_random_url + "/bare")],
                conns,
                per_round,
                rounds,
            )
        what = (
            f"events/history?limit={LIMIT}, {size:,}-event session, "
            f"{len(body) // 1024} KiB body, {loader} -c{conns}"
        )
        base = "bare Starlette, same bytes"
        rows += [
            Row(f"{what}: throughput", ours.rps, "req/s", theirs.rps, base, ours.rps / theirs.rps),
            Row(
                f"{what}: p50", ours.p50_ms, "ms", theirs.p50_ms, base, ours.p50_ms / theirs.p50_ms
            ),
            Row(
                f"{what}: p99", ours.p99_ms, "ms", theirs.p99_ms, base, ours.p99_ms / theirs.p99_ms
            ),
        ]
        rows.append(
            Row(
                f"events/history revalidated (If-None-Match -> 304), {loader} "
                f"-c{conns}: throughput",
                ours_304.rps,
                "req/s",
                theirs_304.rps,
                "bare Starlette 304",
                ours_304.rps / theirs_304.rps,
            )
        )
        random_what = (
            f"events/history at random: {sessions:,} sessions x {LIMIT:,} events, "
            f"{len(one.content) // 1024} KiB bodies, {cached_pages} pages cached, "
            f"{loader} -c{conns}"
        )
        random_base = "bare Starlette, one page's bytes"
        rows += [
            Row(
                f"{random_what}: throughput",
                ours_random.rps,
                "req/s",
                theirs_random.rps,
                random_base,
                ours_random.rps / theirs_random.rps,
            ),
            Row(
                f"{random_what}: p99",
                ours_random.p99_ms,
                "ms",
                theirs_random.p99_ms,
                random_base,
                ours_random.p99_ms / theirs_random.p99_ms,
            ),
        ]
        rows += await sse_rows(app, base_url, subscribers, count)
    return rows


def render(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"hivelog bench http on {STACK} (ratio = hivelog / baseline, same run)")
    for column in ("measurement", "hivelog", "baseline", "ratio", "baseline is"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for r in rows:
        table.add_row(
            r.measurement,
            f"{r.value:,.2f} {r.unit}" if r.value < 100 else f"{r.value:,.0f} {r.unit}",
            "" if r.baseline is None else f"{r.baseline:,.2f}",
            "" if r.ratio is None else f"{r.ratio:,.2f}x",
            r.baseline_name,
        )
    Console(width=170).print(table)


def run(args: argparse.Namespace) -> int:
    base_dir = Path(tempfile.mkdtemp(prefix="hivelog-bench-http-"))
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # serve's loop
            rows = runner.run(measure(args, base_dir))
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    if args.json:
        print(orjson.dumps([r.__dict__ for r in rows], option=orjson.OPT_INDENT_2).decode())
    else:
        render(rows)
    return 0


def _child(argv: list[str]) -> int:
    """Entry points of the helper processes: `load TARGETS_JSON CONNS SECONDS ROUNDS`,
    `subscribe URL N COUNT`."""
    if argv[0] == "load":
        targets = [Target(**t) for t in orjson.loads(argv[1])]
        runs = asyncio.run(child_rounds(targets, int(argv[2]), float(argv[3]), int(argv[4])))
        print(orjson.dumps(runs).decode())
        return 0
    if argv[0] == "subscribe":
        asyncio.run(child_subscribe(argv[1], int(argv[2]), int(argv[3])))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
