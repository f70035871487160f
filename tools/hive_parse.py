"""Parsing hive's events.jsonl files for `hivelog import-hive`, in a second process.

The import's writing (SQLite's indexes, the chain) and its parsing each want most of a
core, and in one interpreter they share one lock. So a big import parses in a child
process (`python -m tools.hive_parse`) while the parent only writes: the parent sends
jobs (a file, its source name, the event ids already stored), the child answers each
with chunks of ready rows (event id, type, data bytes, metadata bytes), the lines it
skipped (line number, reason) and the bytes it read, about one chunk per MiB, in job
order. Pickles in frames both ways (tools/frames.py); an empty frame ends the jobs.
The child ignores the terminal (its own session), exits at the end of its input or
when the parent stops reading, and the parent kills it on any early exit.
A big import runs two children (`ParsePool`), jobs dealt between them in turn.
A small import parses in-process (`InlineParser`): the same `parse_file`, no child.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from .frames import END, frame, read_frame
from .hive_lines import LineError, LineIds, Origin, event_row

PROGRESS_BYTES = 1 << 20  # a chunk per MiB read: the progress bar moves per MiB
CHUNK_ROWS = 10_000  # at most this many rows per chunk (the store's limit per append)
EXIT_WAIT_S = 10.0  # a child at the end of its input exits at once; this is a bound
READ_AHEAD_CHUNKS = 32  # parsed chunks held for `next` (each from about 1 MiB of lines)

# (event id, type, data as JSON bytes, metadata as JSON bytes), as `event_from_line`,
# and the content digest of data and metadata (`eventstore.chain`), one SHA-256 the
# writer then need not compute
Row = tuple[str, str, bytes, bytes, bytes]


@dataclass(frozen=True, slots=True)
class Job:
    path: str
    source: str  # the file relative to HIVE_HOME (event ids and metadata name it)
    existing: frozenset[str]  # event ids already stored: those lines are not parsed


@dataclass(frozen=True, slots=True)
class Chunk:
    rows: list[Row]
    problems: list[tuple[int, str]]  # (line, reason) of lines skipped, in line order
    size: int  # bytes read since the previous chunk of this job
    present: int  # lines whose event id is already stored
    last: bool  # the job's final chunk
    error: str | None = None  # the file could not be read (the chunk is the last)


_U64 = struct.Struct(">q")  # eventstore.chain's u64


def parse_file(job: Job, tz: dt.tzinfo | None) -> Iterator[Chunk]:
    """The chunks of one file (pure but for reading it)."""
    # eventstore.chain.content_digest inlined (metadata is never null here); a test
    # checks the two agree
    sha256, pack = hashlib.sha256, _U64.pack
    ids = LineIds(job.source)
    existing = job.existing
    source = job.source
    rows: list[Row] = []
    problems: list[tuple[int, str]] = []
    size = present = 0
    try:
        with open(job.path, "rb") as lines:
            for number, raw in enumerate(lines, start=1):
                size += len(raw)
                if size >= PROGRESS_BYTES or len(rows) >= CHUNK_ROWS:
                    yield Chunk(rows, problems, size, present, last=False)
                    rows, problems, size, present = [], [], 0, 0
                if raw.isspace():  # blank (as `not raw.strip()`; lines are never empty)
                    continue
                event_id = ids(number)
                if event_id in existing:
                    present += 1
                    continue
                try:
                    _, kind, data, metadata = event_row(raw, Origin(source, number), tz, event_id)
                except LineError as exc:
                    problems.append((number, str(exc)))
                    continue
                digest = sha256(pack(len(data)) + data + b"\x01" + pack(len(metadata)) + metadata)
                rows.append((event_id, kind, data, metadata, digest.digest()))
    except OSError as exc:
        yield Chunk(rows, problems, size, present, last=True, error=f"{source}: {exc}")
        return
    yield Chunk(rows, problems, size, present, last=True)


class Parser(Protocol):
    """Where the files are parsed: `submit` jobs, then `next` their chunks in order."""

    def submit(self, job: Job) -> None: ...
    async def next(self) -> Chunk: ...
    def close(self) -> None: ...


class InlineParser:
    """`parse_file` in this process, one job after another (small imports, tests)."""

    def __init__(self, tz: dt.tzinfo | None) -> None:
        self.tz = tz
        self._jobs: deque[Job] = deque()
        self._chunks: Iterator[Chunk] | None = None

    def submit(self, job: Job) -> None:
        self._jobs.append(job)

    async def next(self) -> Chunk:
        if self._chunks is None:
            self._chunks = parse_file(self._jobs.popleft(), self.tz)
        chunk = next(self._chunks)
        if chunk.last:
            self._chunks = None
        return chunk

    def close(self) -> None:
        self._jobs.clear()
        self._chunks = None


class ParseWorker:
    """`parse_file` in a child process; jobs go out through a thread of their own (a
    job can be bigger than the pipe while the child waits for us to read its chunks),
    and chunks come in through another, up to READ_AHEAD_CHUNKS ahead of `next`: the
    child parses on while this process writes a group, instead of waiting on a full
    pipe for the group's commit."""

    def __init__(self, tz: dt.tzinfo | None) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-m", "tools.hive_parse"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the parent only, which stops it
        )
        self._jobs: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._open = 0  # jobs submitted whose last chunk has not been read
        self._sender = threading.Thread(target=self._send, name="hive-parse-jobs", daemon=True)
        self._sender.start()
        self._jobs.put(pickle.dumps(tz))
        # frames read ahead; None: the child's output ended
        self._chunks: queue.Queue[bytes | None] = queue.Queue(READ_AHEAD_CHUNKS)
        self._stopping = threading.Event()
        self._ended = False
        self._receiver = threading.Thread(
            target=self._receive, name="hive-parse-chunks", daemon=True
        )
        self._receiver.start()

    @property
    def children(self) -> list[subprocess.Popen[bytes]]:
        return [self.child]

    def submit(self, job: Job) -> None:
        self._open += 1
        self._jobs.put(pickle.dumps(job))

    async def next(self) -> Chunk:
        data = None if self._ended else await asyncio.to_thread(self._chunks.get)
        if data is None:
            self._ended = True
            raise RuntimeError(f"the parsing process ended (exit code {self.child.wait()})")
        chunk: Chunk = pickle.loads(data)
        if chunk.last:
            self._open -= 1
        return chunk

    def _receive(self) -> None:
        """Read the child's frames into `_chunks` until its output ends (then None)."""
        pipe = self.child.stdout
        assert pipe is not None
        while not self._stopping.is_set():
            try:
                data = read_frame(pipe)
            except (OSError, ValueError):  # the pipe closed under us: the end
                data = None
            while not self._stopping.is_set():
                try:
                    self._chunks.put(data, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if data is None:
                return

    def _send(self) -> None:
        pipe = self.child.stdin
        assert pipe is not None
        try:
            while (job := self._jobs.get()) is not None:
                pipe.write(frame(job))
                pipe.flush()
            pipe.write(END)
            pipe.close()
        except (BrokenPipeError, ValueError, OSError):  # the child is gone: nothing to do
            pass

    def close(self) -> None:
        """Stop the child: at the end of its jobs it exits by itself; before (an error,
        Ctrl-C) it is killed. Either way it is waited for."""
        self._jobs.put(None)
        child = self.child
        if self._open:
            child.kill()
        try:
            child.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        self._sender.join(timeout=EXIT_WAIT_S)
        self._stopping.set()  # the receiver stops at its next frame or within 0.1 s
        self._receiver.join(timeout=EXIT_WAIT_S)
        with contextlib.suppress(queue.Full):  # a `next` still waiting returns (an error)
            self._chunks.put_nowait(None)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class ParsePool:
    """Several `ParseWorker`s, jobs dealt round-robin; `next` reads the chunks of the
    oldest open job from the worker that has it, so chunks still come in job order.
    One child parsing kept a whole core busy while the writer used about two thirds of
    the other: with two, the parsing is spread over both cores."""

    def __init__(self, tz: dt.tzinfo | None, workers: int) -> None:
        self._workers = [ParseWorker(tz) for _ in range(workers)]
        self._dealt = 0
        self._owners: deque[ParseWorker] = deque()  # the worker of each open job, in order

    @property
    def children(self) -> list[subprocess.Popen[bytes]]:
        return [worker.child for worker in self._workers]

    def submit(self, job: Job) -> None:
        worker = self._workers[self._dealt % len(self._workers)]
        self._dealt += 1
        worker.submit(job)
        self._owners.append(worker)

    async def next(self) -> Chunk:
        if not self._owners:
            raise RuntimeError("no job was submitted")
        chunk = await self._owners[0].next()
        if chunk.last:
            self._owners.popleft()
        return chunk

    def close(self) -> None:
        self._owners.clear()
        for worker in self._workers:
            worker.close()


def open_parser(
    tz: dt.tzinfo | None, total_bytes: int, process_min_bytes: int, processes: int = 1
) -> Parser:
    """Child processes when there is enough to parse to pay for starting one."""
    if total_bytes >= process_min_bytes:
        return ParsePool(tz, processes) if processes > 1 else ParseWorker(tz)
    return InlineParser(tz)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child: the time zone, then jobs until an empty frame; chunks out in order."""
    first = read_frame(stdin)
    if first is None:
        return
    tz: dt.tzinfo | None = pickle.loads(first)
    while (payload := read_frame(stdin)) is not None:
        job: Job = pickle.loads(payload)
        for chunk in parse_file(job, tz):
            data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
            stdout.write(frame(data))
            stdout.flush()


if __name__ == "__main__":
    # the module under its own name, so chunks pickle as tools.hive_parse.Chunk
    from tools.hive_parse import serve as serve_jobs

    with contextlib.suppress(BrokenPipeError):  # the parent stopped reading: it is leaving
        serve_jobs(sys.stdin.buffer, sys.stdout.buffer)
