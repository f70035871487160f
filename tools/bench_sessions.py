"""`hivelog bench sessions`: restart cost against log length, and command throughput.

Rows (medians within this one run):
  - restart-to-ready (open the store, load the checkpoint, fold what follows, erase
    leftovers) with 10k sessions in 1M events vs 10k sessions in 10k events
    (target <= 2x: restart cost must not grow with the log);
  - the first start on the 1M-event log (no checkpoint: full fold from 0), for scale;
  - POST /api/sessions on a real `hivelog serve` vs a bare Starlette endpoint that
    parses the same body, both under uvicorn on 127.0.0.1 on `hivelog serve`'s stack
    (its loop and its protocol with the head guards: `tools.serve.STACK`), same
    client, same run, at 1, 16 and 64 keep-alive connections (group commit shares
    fsyncs as load grows);
  - at 16 connections, the CPU each request costs the server process (all its
    threads: event loop, SQLite writer, reader) and the load generator, hivelog vs
    bare (Linux /proc): client and servers share this machine's cores, so once the
    server is CPU-bound the throughput ratio is roughly the inverse of this one;
  - at 16 connections, the floor (tools/bench_floors.py): the bare endpoint plus only a
    durable group commit of a create's three events, against the bare endpoint (how far
    any durable create could get here), and hivelog against that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from api.core.service import SessionService
from eventstore import NO_STREAM, NewEvent, open_store
from projections.envelope import envelope
from tools.bench_floors import FLOOR_APP
from tools.bench_table import Row, show

BARE_APP = """
import sys, orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from tools.serve import LOOP, protocol_with_head_timeout

async def create(request):
    body = await request.body()
    value = orjson.loads(body) if body.strip() else {}
    return Response(orjson.dumps({"session_id": "x", **value}), 201,
                    media_type="application/json")

app = Starlette(routes=[Route("/api/sessions", create, methods=["POST"])])
# `hivelog serve`'s stack (uvloop and httptools where installed, with the head guards),
# so the ratio measures the app, not a different HTTP parser
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            loop=LOOP, http=protocol_with_head_timeout(10.0))
"""


def _session_events(sid: str, n: int, now: float) -> list[NewEvent]:
    created = envelope("session_created", {"session_id": sid}, timestamp=now)
    events = [NewEvent("session_created", orjson.dumps(created))]
    for i in range(n - 1):
        body = envelope("client_input_received", {"content": f"message {i} " * 8}, timestamp=now)
        events.append(NewEvent("client_input_received", orjson.dumps(body)))
    return events


async def build_log(url: str, sessions: int, per_session: int) -> None:
    store = await open_store(url)
    now = time.time()
    try:
        chunk = 100
        for start in range(0, sessions, chunk):
            await asyncio.gather(
                *(
                    store.append(f"s{i}", _session_events(f"s{i}", per_session, now), NO_STREAM)
                    for i in range(start, min(start + chunk, sessions))
                )
            )
    finally:
        await store.close()


async def start_once(url: str) -> tuple[float, int]:
    """Seconds from opening the store to a ready service, and events folded on start."""
    began = time.perf_counter()
    store = await open_store(url)
    service = SessionService(store)
    await service.start()
    elapsed = time.perf_counter() - began
    folded = service.events_folded_at_start
    await service.stop()
    await store.close()
    return elapsed, folded


async def restart_rows(base: Path, quick: bool) -> list[Row]:
    sessions = 1_000 if quick else 10_000
    per_session = 10 if quick else 100
    reps = 3 if quick else 5
    small_url = f"sqlite:///{base / 'small.db'}"
    big_url = f"sqlite:///{base / 'big.db'}"
    await build_log(small_url, sessions, 1)
    await build_log(big_url, sessions, per_session)
    first_big, folded = await start_once(big_url)  # full fold from 0, writes the checkpoint
    await start_once(small_url)
    small = statistics.median([(await start_once(small_url))[0] for _ in range(reps)])
    big = statistics.median([(await start_once(big_url))[0] for _ in range(reps)])
    ratio = big / small
    total = sessions * per_session
    return [
        Row(
            f"restart-to-ready, {sessions:,} sessions / {total:,} events "
            f"vs {sessions:,} events (checkpointed)",
            big * 1e3,
            "ms",
            small * 1e3,
            ratio,
            "<= 2x",
            ratio <= 2.0,
        ),
        Row(f"first start, no checkpoint: fold {folded:,} events from 0", first_big, "s"),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(argv: list[str], port: int, log: Path) -> Iterator[int]:
    """A uvicorn subprocess on 127.0.0.1 (yields its pid), stopped by its pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{base}/api/sessions", timeout=1)
                break
            time.sleep(0.05)
        yield process.pid
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


async def _post_loop(port: int, request: bytes, counter: Iterator[int]) -> None:
    """One keep-alive connection sending requests until the shared counter runs out.

    A minimal HTTP/1.1 client (Content-Length bodies only), so the client is not
    the bottleneck: httpx tops out near the bare endpoint's rate on this machine.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in counter:
            writer.write(request)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            if status != 201:
                raise RuntimeError(f"POST /api/sessions gave {status}: {body[:200]!r}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process, all threads (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Sample:
    """One measured run: requests per second, and CPU microseconds per request in the
    server process and in this (the client's) process; NaN where not measurable."""

    rate: float
    server_us: float
    client_us: float


def measure(pid: int, port: int, total: int, concurrency: int) -> Sample:
    server_before, client_before = _cpu_seconds(pid), _own_cpu_seconds()
    rate = asyncio.run(post_rate(port, total, concurrency))
    server_after, client_after = _cpu_seconds(pid), _own_cpu_seconds()
    server = math.nan
    if server_before is not None and server_after is not None:
        server = (server_after - server_before) / total * 1e6
    return Sample(rate, server, (client_after - client_before) / total * 1e6)


async def post_rate(port: int, total: int, concurrency: int) -> float:
    """Requests per second for `total` POST /api/sessions over `concurrency` connections."""
    body = b'{"initial_prompt": "hello"}'
    request = (
        f"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    counter = iter(range(total))
    began = time.perf_counter()
    await asyncio.gather(*(_post_loop(port, request, counter) for _ in range(concurrency)))
    return total / (time.perf_counter() - began)


def throughput_rows(base_dir: Path, quick: bool) -> list[Row]:
    total = 400 if quick else 3000
    ours_port, bare_port = _free_port(), _free_port()
    ours_argv = [
        sys.executable, "-m", "tools", "serve", "--db", f"sqlite:///{base_dir / 'http.db'}",
        "--port", str(ours_port), "--log-level", "warning",
        "--agents-root", str(base_dir),
    ]  # fmt: skip
    bare_argv = [sys.executable, "-c", BARE_APP, str(bare_port)]
    floor_port = _free_port()
    floor_argv = [sys.executable, "-c", FLOOR_APP, str(floor_port), str(base_dir / "floor.db")]
    rows = []
    cpu: dict[str, list[Sample]] = {"ours": [], "bare": []}
    floor_runs: list[Sample] = []
    with (
        _server(ours_argv, ours_port, base_dir / "ours.log") as ours_pid,
        _server(bare_argv, bare_port, base_dir / "bare.log") as bare_pid,
        _server(floor_argv, floor_port, base_dir / "floor.log") as floor_pid,
    ):
        # up; the load goes over raw keep-alive connections
        asyncio.run(post_rate(ours_port, 50, 16))  # warm-up
        asyncio.run(post_rate(bare_port, 50, 16))
        asyncio.run(post_rate(floor_port, 50, 16))
        for concurrency in (1, 16, 64):
            ours_runs, bare_runs = [], []
            n = total // 4 if concurrency == 1 else total
            for _ in range(3):  # interleaved, so machine noise hits both
                ours_runs.append(measure(ours_pid, ours_port, n, concurrency))
                bare_runs.append(measure(bare_pid, bare_port, n, concurrency))
                if concurrency == 16:  # the floor beside them (tools/bench_floors.py)
                    floor_runs.append(measure(floor_pid, floor_port, n, concurrency))
            ours_rate = statistics.median(r.rate for r in ours_runs)
            bare_rate = statistics.median(r.rate for r in bare_runs)
            ratio = ours_rate / bare_rate
            rows.append(
                Row(
                    f"POST /api/sessions (3 durable events each), {concurrency} connection(s) "
                    "vs bare Starlette endpoint",
                    ours_rate,
                    "req/s",
                    bare_rate,
                    ratio,
                    ">= 0.5x" if concurrency == 16 else "report",
                    ratio >= 0.5 if concurrency == 16 else None,
                )
            )
            if concurrency == 16:
                cpu = {"ours": ours_runs, "bare": bare_runs}
                rows += floor_rows(
                    ours_rate, bare_rate, statistics.median(r.rate for r in floor_runs)
                )
    rows += cpu_rows(cpu["ours"], cpu["bare"])
    return rows


def floor_rows(ours: float, bare: float, floor: float) -> list[Row]:
    """The floor at 16 connections: the bare endpoint plus nothing but a durable group
    commit of a create's three events (no checks, chain, projections or middleware),
    against the bare endpoint, and hivelog's create against that floor."""
    return [
        Row(
            "floor: bare endpoint + bare durable group commit of 3 events, 16 connections, "
            "vs bare Starlette endpoint",
            floor,
            "req/s",
            bare,
            floor / bare,
            "reference",
        ),
        Row(
            "hivelog's create (POST) vs that floor, 16 connections",
            ours,
            "req/s",
            floor,
            ours / floor,
            "reference",
        ),
    ]


def cpu_rows(ours: list[Sample], bare: list[Sample]) -> list[Row]:
    """CPU per request at 16 connections, server and client, hivelog vs bare (medians)."""
    rows = []
    for side, pick in (("server process", "server_us"), ("load generator", "client_us")):
        mine = statistics.median(getattr(s, pick) for s in ours)
        theirs = statistics.median(getattr(s, pick) for s in bare)
        if math.isnan(mine) or math.isnan(theirs):
            continue
        rows.append(
            Row(
                f"CPU per request in the {side} (all threads), 16 connections, "
                "hivelog vs bare endpoint",
                mine,
                "us",
                theirs,
                mine / theirs,
                "report",
            )
        )
    return rows


def run(args: argparse.Namespace) -> int:
    chosen = getattr(args, "store_dir", None)
    base_dir = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="hivelog-bench-"))
    base_dir.mkdir(parents=True, exist_ok=True)
    try:
        rows = asyncio.run(restart_rows(base_dir, args.quick))
        rows += throughput_rows(base_dir, args.quick)
    finally:
        if not chosen:
            shutil.rmtree(base_dir, ignore_errors=True)
    show(rows, "hivelog bench sessions (medians; ratio = hivelog vs baseline)", as_json=args.json)
    return 0
