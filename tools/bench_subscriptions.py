"""`hivelog bench subscriptions`: consumer-group workers beside SSE, on the same events.

A real `hivelog serve` (SQLite, loopback) runs in a child process. Two phases:

  - drain: N events (100k; 5k with --quick) are appended first; then 4 workers
    (claim up to 100, ack them, repeat) and one SSE client (`/api/events?after=`)
    start at the same instant, and each is timed until it has all N. SSE is the
    baseline: a read-only view with no acknowledgement, the cheapest way out.
  - live: with the workers and an SSE client attached, a paced producer appends M
    events (5,000; 1,000 with --quick) in batches of 10; latency is from sending
    the append until a worker holds the message, and until the SSE client has it.

Workers, producer and SSE client are threads of this process with keep-alive
connections (http.client), timing on one monotonic clock.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from tools.bench_table import Row, show

EVENT_TYPE = "bench_job"
SESSIONS = 50
APPEND_BATCH = 500
LIVE_BATCH = 10
LIVE_RATE = 2000.0  # events per second offered in the live phase
CLAIM_MAX = 100


class Conn:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int, timeout: float = 120) -> None:
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        try:
            self.c.request(method, path, body=payload, headers=headers)
            response = self.c.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # the server closed an idle keep-alive connection: once more on a new one
            self.c.close()
            self.c.request(method, path, body=payload, headers=headers)
            response = self.c.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return orjson.loads(data) if data else None

    def close(self) -> None:
        self.c.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(folder: Path, db_url: str | None) -> Iterator[int]:
    port = _free_port()
    log = (folder / "server.log").open("wb")
    env = {**os.environ, "HIVE_HOME": str(folder / "hive"), "HIVELOG_AGENTS_ROOTS": ""}
    db = db_url or f"sqlite:///{folder / 'bench.db'}"
    command = [sys.executable, "-m", "tools", "serve", "--db", db, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((folder / "server.log").read_text())
            with contextlib.suppress(OSError, RuntimeError, http.client.HTTPException):
                Conn(port, 2).call("GET", "/api/health")
                break
            time.sleep(0.05)
        yield port
    except BaseException:
        sys.stderr.write((folder / "server.log").read_text()[-3000:])
        raise
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


class Workers:
    """Worker threads: claim, note when each position arrived, ack, repeat."""

    def __init__(self, port: int, group: str, count: int) -> None:
        self.port, self.group, self.count = port, group, count
        self.got: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(count)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _loop(self, slot: int) -> None:
        conn = Conn(self.port)
        base = f"/api/subscriptions/{self.group}"
        try:
            while not self.stop.is_set():
                body = {"worker": f"bench-{slot}", "max": CLAIM_MAX, "wait_seconds": 1}
                messages = conn.call("POST", base + "/claim", body)["messages"]
                now = time.perf_counter()
                if not messages:
                    continue
                with self.lock:
                    for m in messages:
                        self.got.setdefault(m["event"]["position"], now)
                ids = [m["delivery_id"] for m in messages]
                conn.call("POST", base + "/ack", {"delivery_ids": ids})
        finally:
            conn.close()

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


class SseReader:
    """One SSE client on /api/events, noting when each position arrived."""

    def __init__(self, port: int, after: int) -> None:
        self.port, self.after = port, after
        self.got: dict[int, float] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        path = f"/api/events?after={self.after}&types={EVENT_TYPE}"
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError, AttributeError):
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            while True:
                line = response.readline()
                if not line:
                    return
                if line.startswith(b"id:"):
                    self.got[int(line[3:])] = time.perf_counter()

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        self.thread.join(timeout=10)


def _append(conn: Conn, sid: str, n: int, sent: dict[int, float]) -> None:
    started = time.perf_counter()
    body = {"events": [{"type": EVENT_TYPE, "data": {"k": i}} for i in range(n)]}
    result = conn.call("POST", f"/api/sessions/{sid}/events", body)
    last = result["last_position"]
    for position in range(last - n + 1, last + 1):
        sent[position] = started


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(port: int, events: int, live: int, workers: int) -> dict[str, float]:
    conn = Conn(port)
    sessions = [conn.call("POST", "/api/sessions", {})["session_id"] for _ in range(SESSIONS)]
    group = "bench"
    conn.call(
        "PUT",
        f"/api/subscriptions/{group}",
        {"types": [EVENT_TYPE], "from": "end", "ordering": "none", "max_in_flight": 1000},
    )
    start = conn.call("GET", "/api/health")["head_position"]
    sent: dict[int, float] = {}
    for i in range(0, events, APPEND_BATCH):
        _append(conn, sessions[(i // APPEND_BATCH) % SESSIONS], min(APPEND_BATCH, events - i), sent)

    # drain: workers and SSE start together on the same backlog
    pool, sse = Workers(port, group, workers), SseReader(port, start)
    t0 = time.perf_counter()
    pool.start()
    sse.start()
    pool.wait_for(events, timeout=1800)
    drained_at = time.perf_counter()
    sse.wait_for(events, timeout=1800)
    drain_workers = drained_at - t0
    drain_sse = max(sse.got.values(), default=t0) - t0
    if len(pool.got) < events or len(sse.got) < events:
        raise RuntimeError(f"drain incomplete: workers {len(pool.got)}, sse {len(sse.got)}")
    sse.close()

    # live: a paced producer, workers and a fresh SSE client attached
    head = conn.call("GET", "/api/health")["head_position"]
    live_sse = SseReader(port, head)
    live_sse.start()
    time.sleep(0.5)
    live_sent: dict[int, float] = {}
    interval = LIVE_BATCH / LIVE_RATE
    next_at = time.perf_counter()
    for i in range(0, live, LIVE_BATCH):
        _append(conn, sessions[(i // LIVE_BATCH) % SESSIONS], min(LIVE_BATCH, live - i), live_sent)
        next_at += interval
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    pool.wait_for(events + live, timeout=600)
    live_sse.wait_for(live, timeout=600)
    pool.close()
    live_sse.close()
    claim_ms = [(pool.got[p] - t) * 1000 for p, t in live_sent.items() if p in pool.got]
    sse_ms = [(live_sse.got[p] - t) * 1000 for p, t in live_sent.items() if p in live_sse.got]
    view = conn.call("GET", f"/api/subscriptions/{group}")
    conn.close()
    if view["in_flight"] or view["ready"] or view["parked"]:
        raise RuntimeError(f"group not drained: {view}")
    return {
        "events": events,
        "drain_workers_s": drain_workers,
        "drain_sse_s": drain_sse,
        "workers_per_s": events / drain_workers,
        "sse_per_s": events / drain_sse if drain_sse > 0 else float("nan"),
        "live_events": live,
        "live_claimed": len(claim_ms),
        "claim_p50_ms": _percentile(claim_ms, 0.50),
        "claim_p99_ms": _percentile(claim_ms, 0.99),
        "sse_p50_ms": _percentile(sse_ms, 0.50),
        "sse_p99_ms": _percentile(sse_ms, 0.99),
        "mean_claim_ms": statistics.fmean(claim_ms) if claim_ms else float("nan"),
    }


def run(args: argparse.Namespace) -> int:
    events = args.subs_events or (5_000 if args.quick else 100_000)
    live = args.subs_live or (1_000 if args.quick else 5_000)
    folder = Path(tempfile.mkdtemp(prefix="hivelog-bench-subs-"))
    try:
        with _server(folder, args.subs_db) as port:
            r = measure(port, events, live, args.subs_workers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    w = args.subs_workers
    rows = [
        Row(
            f"drain {events:,} events, {w} workers (claim+ack)",
            r["workers_per_s"],
            "events/s",
            baseline=r["sse_per_s"],
            ratio=r["workers_per_s"] / r["sse_per_s"],
        ),
        Row(
            f"append->claim p50 ({live:,} live, {LIVE_RATE:g}/s offered)",
            r["claim_p50_ms"],
            "ms",
            baseline=r["sse_p50_ms"],
            ratio=r["claim_p50_ms"] / r["sse_p50_ms"],
        ),
        Row(
            "append->claim p99",
            r["claim_p99_ms"],
            "ms",
            baseline=r["sse_p99_ms"],
            ratio=r["claim_p99_ms"] / r["sse_p99_ms"],
        ),
    ]
    backend = "PostgreSQL" if (args.subs_db or "").startswith("postgres") else "SQLite"
    show(
        rows,
        f"hivelog bench subscriptions ({backend})",
        as_json=args.json,
        footer=[
            "baseline: SSE delivery of the same events in the same run (/api/events, one client)",
            f"drain: workers {r['drain_workers_s']:.1f} s, SSE {r['drain_sse_s']:.1f} s; "
            "latency from sending the append to a worker / the SSE client holding it",
        ],
    )
    return 0
