"""`hivelog worker GROUP --exec CMD`: run a command once per message of a consumer group.

Each of `--concurrency` threads claims one message at a time (long-polling), runs
CMD through `/bin/sh -c` with the event JSON on stdin and `HIVELOG_SESSION_ID`,
`HIVELOG_EVENT_TYPE`, `HIVELOG_ATTEMPT`, `HIVELOG_DELIVERY_ID` in its environment,
then acks on exit 0 or nacks for a retry with exponential backoff (1 s, 2 s, 4 s,
... up to 5 min; the group's `max_retries` then parks it). A command still running
shortly before the group's `ack_timeout_seconds` is killed (its whole process group)
and nacked as timed out: left running, its message would be handed out again and run
a second time alongside it. Only the end of the command's stderr is kept (its reason
on a nack), so a command that writes gigabytes costs no memory. SIGTERM or SIGINT:
commands already running finish and are acked or nacked; a message claimed but
not started is handed back at once; then the worker exits 0.

Only the standard library (urllib): a worker host needs nothing but Python.
Delivery is at-least-once: a worker killed mid-command leaves its message to be
redelivered after the group's ack timeout, so CMD should be idempotent (the event's
`position` is a stable key). Keep the group's `ack_timeout_seconds` above CMD's run time:
it is CMD's time limit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import FrameType
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"
CLAIM_WAIT_SECONDS = 5.0  # a stop is noticed within this long
MAX_BACKOFF_SECONDS = 300.0
STDERR_TAIL = 500
DEFAULT_ACK_TIMEOUT = 30.0  # the server's default, used until the group's is read
KILL_GRACE_SECONDS = 2.0  # from SIGTERM to SIGKILL for a command past its time


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Api:
    """A tiny JSON client for hivelog's HTTP API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("X-Hive-Token", self.token)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from None


def backoff(attempt: int) -> float:
    return float(min(2 ** max(0, attempt - 1), MAX_BACKOFF_SECONDS))


def ensure_group(api: Api, group: str, types: list[str] | None) -> None:
    """Create the group when it is missing; an existing group keeps its settings."""
    try:
        api.call("GET", f"/api/subscriptions/{group}")
        return
    except ApiError as exc:
        if exc.status != 404:
            raise
    api.call("PUT", f"/api/subscriptions/{group}", {"types": types})


class Worker:
    def __init__(self, api: Api, group: str, command: str, worker_id: str) -> None:
        self.api = api
        self.group = group
        self.command = command
        self.worker_id = worker_id
        self.stopping = threading.Event()
        self.base = f"/api/subscriptions/{group}"
        self.ack_timeout = DEFAULT_ACK_TIMEOUT

    def time_limit(self) -> float:
        """How long a command may run: the group's ack timeout (read now, so a changed
        setting counts), less a margin for the kill and the nack to land before the
        server hands the message out again."""
        try:
            view = self.api.call("GET", self.base, timeout=10.0)
            self.ack_timeout = float(view["ack_timeout_seconds"])
        except (OSError, ApiError, ValueError, KeyError, TypeError) as exc:
            self.log(f"cannot read the group's ack timeout ({exc}); using {self.ack_timeout}s")
        margin = min(KILL_GRACE_SECONDS + 3.0, self.ack_timeout / 4)
        return self.ack_timeout - margin

    def log(self, text: str) -> None:
        print(f"hivelog worker {self.worker_id}: {text}", file=sys.stderr, flush=True)

    def loop(self, slot: int) -> None:
        pause = 0.5
        while not self.stopping.is_set():
            try:
                got = self.api.call(
                    "POST",
                    self.base + "/claim",
                    {
                        "worker": f"{self.worker_id}/{slot}",
                        "max": 1,
                        "wait_seconds": CLAIM_WAIT_SECONDS,
                    },
                    timeout=CLAIM_WAIT_SECONDS + 30,
                )
                for message in got["messages"]:
                    self.handle(message)
                pause = 0.5
            except (OSError, ApiError, ValueError, KeyError) as exc:
                if isinstance(exc, ApiError) and exc.status == 404:
                    self.log(f"group {self.group!r} does not exist (use --create); stopping")
                    self.stopping.set()
                    return
                self.log(f"{exc}; retrying in {pause:.1f}s")
                self.stopping.wait(pause)
                pause = min(pause * 2, 10.0)

    def handle(self, message: dict[str, Any]) -> None:
        delivery = message["delivery_id"]
        event = message["event"]
        if self.stopping.is_set():  # claimed as we were told to stop: hand it back now
            self.settle("nack", delivery, action="retry", reason="worker stopping")
            return
        env = {
            **os.environ,
            "HIVELOG_SESSION_ID": str(event.get("session_id", "")),
            "HIVELOG_EVENT_TYPE": str(event.get("type", "")),
            "HIVELOG_ATTEMPT": str(message["attempt"]),
            "HIVELOG_DELIVERY_ID": delivery,
            "HIVELOG_POSITION": str(event.get("position", "")),
        }
        limit = self.time_limit()
        status, tail = run_command(self.command, json.dumps(event).encode(), env, limit)
        if tail:
            sys.stderr.write(tail)
        where = f"position {event.get('position')} ({event.get('type')})"
        if status == 0:
            self.settle("ack", delivery)
            self.log(f"{where} done")
            return
        delay = backoff(int(message["attempt"]))
        # the server refuses NUL in a reason (400): binary stderr must not stop the nack
        tail = tail.replace("\x00", "\ufffd")
        if status is None:
            reason = (
                f"timed out: killed after {limit:.1f}s (the group's ack_timeout_seconds "
                f"is {self.ack_timeout:g}): {tail.strip()[-200:]}"
            )
        else:
            reason = f"exit status {status}: {tail.strip()[-200:]}"
        self.settle("nack", delivery, action="retry", reason=reason, delay_seconds=delay)
        self.log(f"{where} failed ({reason}); retry in {delay:.0f}s")

    def settle(self, verb: str, delivery: str, **extra: Any) -> None:
        """Ack or nack, retrying through short outages (the delivery would time out anyway)."""
        for attempt in range(5):
            try:
                body = {"delivery_ids": [delivery], **extra}
                answer = self.api.call("POST", f"{self.base}/{verb}", body)
                if isinstance(answer, dict) and delivery in (answer.get("unknown") or []):
                    self.log(
                        f"{verb} of {delivery} came too late: its ack timeout had passed, "
                        "so the message is handed out again and may run twice"
                    )
                return
            except (OSError, ApiError) as exc:
                self.log(f"{verb} of {delivery} failed: {exc}")
                if isinstance(exc, ApiError) and 400 <= exc.status < 500 and exc.status != 429:
                    return  # the same request will be refused again; the ack timeout decides
                time.sleep(0.5 * (attempt + 1))


def run_command(
    command: str, stdin: bytes, env: dict[str, str], limit: float
) -> tuple[int | None, str]:
    """Run `command` for at most `limit` seconds: its exit status (None when it was
    killed for running too long) and the end of its stderr. stderr is read as it comes
    and only its tail kept; the whole process group is killed on time-out, so no
    grandchild keeps running next to the message's next delivery."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=sys.stderr,  # the command's output goes to the worker's log
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # a Ctrl-C to the worker does not kill the command
    )
    assert process.stdin is not None and process.stderr is not None
    tail = bytearray()
    feeder = threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True)
    reader = threading.Thread(target=_drain, args=(process.stderr, tail), daemon=True)
    feeder.start()
    reader.start()
    try:
        status: int | None = process.wait(timeout=max(limit, 0.1))
    except subprocess.TimeoutExpired:
        status = None
        _kill_group(process)
    feeder.join(timeout=KILL_GRACE_SECONDS)
    reader.join(timeout=KILL_GRACE_SECONDS)  # a detached grandchild may hold the pipe
    return status, bytes(tail).decode(errors="replace")[-STDERR_TAIL:]


def _feed(pipe: Any, data: bytes) -> None:
    """The event on stdin; a command that does not read it is not an error."""
    try:
        pipe.write(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _drain(pipe: Any, tail: bytearray) -> None:
    """Read stderr to its end, keeping only the last STDERR_TAIL * 4 bytes."""
    keep = STDERR_TAIL * 4  # a UTF-8 character is at most 4 bytes
    while chunk := pipe.read1(65536):
        tail += chunk
        if len(tail) > keep:
            del tail[:-keep]
    pipe.close()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, SIGKILL it after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
            if sig == signal.SIGTERM:
                os.killpg(process.pid, signal.SIGKILL)  # grandchildren that ignored it
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("--concurrency must be >= 1", file=sys.stderr)
        return 2
    url = args.url or os.environ.get("HIVELOG_URL", DEFAULT_URL)
    api = Api(url, args.token or os.environ.get("HIVELOG_TOKEN"))
    types = [t for t in (args.types or "").split(",") if t] or None
    try:
        if args.create:
            ensure_group(api, args.group, types)
    except (OSError, ApiError) as exc:
        print(f"hivelog worker: cannot create group {args.group!r}: {exc}", file=sys.stderr)
        return 1
    worker = Worker(
        api, args.group, args.command, args.worker_id or f"{os.uname()[1]}:{os.getpid()}"
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.log(f"started: {args.concurrency} at a time from group {args.group!r}")
    threads = [
        threading.Thread(target=worker.loop, args=(slot,), name=f"worker-{slot}", daemon=True)
        for slot in range(args.concurrency)
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.2)
    return 0
