"""`hivelog import-hive` parsing in a child process (tools/hive_parse.py): the same log,
the same report as parsing in-process, re-import of new lines only, and the child
stopped on every way out (the end, an early exit, Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstore import open_store
from eventstore.chain import content_digest
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.tools_support import ROOT, hivelog
from tools.bench_tools import write_hive_home
from tools.hive_parse import Chunk, InlineParser, Job, ParsePool, ParseWorker, parse_file
from tools.import_hive import PARSE_PROCESS_MIN_BYTES, Importer, Summary, find_sessions

EVENTS = 40_000  # about 10 MiB of lines: over PARSE_PROCESS_MIN_BYTES, so a child parses
BAD = {4: b"not json\n", 9: b'{"data": {}}\n', 12: b"[1, 2]\n"}


def _hive_home(folder: Path, events: int = EVENTS) -> tuple[Path, Path]:
    """A home the CLI parses in a child: bad lines and a blank one in its first file."""
    home = folder / "hive"
    write_hive_home(home, events, per_session=10_000)
    files = sorted(home.glob("**/events.jsonl"))
    lines = files[0].read_bytes().splitlines(keepends=True)
    for number, raw in sorted(BAD.items()):
        lines.insert(number - 1, raw)
    lines.insert(20, b"  \n")
    files[0].write_bytes(b"".join(lines))
    assert sum(f.stat().st_size for f in files) >= PARSE_PROCESS_MIN_BYTES
    return home, files[0]


def _import(home: Path, url: str) -> tuple[int, dict[str, Any]]:
    r = hivelog("import-hive", str(home), "--db", url, "--timezone", "UTC", "--json")
    assert r.returncode in (0, 1), r.stderr.decode()
    return r.returncode, orjson.loads(r.stdout)


async def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each stream's events as stored (`$imports`: type and id; its data has a time)."""
    store = await open_store(url)
    try:
        found: dict[str, list[tuple[Any, ...]]] = {}
        after = 0
        while page := await store.read_all(after_position=after, limit=5000):
            for e in page:
                data = e.data_json if not e.stream_id.startswith("$") else e.type
                found.setdefault(e.stream_id, []).append(
                    (e.version, e.event_id, e.type, data, e.metadata_json)
                )
            after = page[-1].position
        return found
    finally:
        await store.close()


def _digests(path: Path) -> dict[str, bytes]:
    """Each session event's stored content digest (the child computed the CLI's)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        found = conn.execute("SELECT event_id, digest FROM events WHERE stream_id != '$imports'")
        return dict(found.fetchall())


async def _in_process(home: Path, url: str) -> Summary:
    """The importer parsing in this process (`InlineParser`), through the store."""
    store = await open_store(url)
    summary = Summary(sessions_found=len(find_sessions(home)))
    try:
        importer = Importer(store, home, None, summary, dry_run=False)
        await importer.sessions(find_sessions(home), lambda n: None)
    finally:
        await store.close()
    return summary


async def test_child_parsing_stores_and_reports_what_in_process_parsing_does(
    tmp_path: Path,
) -> None:
    home, first = _hive_home(tmp_path)
    by_cli = f"sqlite:///{tmp_path / 'cli.db'}"
    code, summary = await asyncio.to_thread(_import, home, by_cli)
    assert code == 1
    source = first.relative_to(home).as_posix()
    assert [(p["source"], p["line"]) for p in summary["problems"]] == [
        (source, n) for n in sorted(BAD)
    ]
    assert (summary["events_imported"], summary["lines_skipped"]) == (EVENTS, len(BAD))
    by_store = f"sqlite:///{tmp_path / 'store.db'}"
    inline = await _in_process(home, by_store)
    assert summary["problems"] == inline.problems
    cli, plain = await _rows(by_cli), await _rows(by_store)
    cli.pop("$imports"), plain.pop("$imports")  # records also hold colonies (CLI only)
    assert cli == plain and sum(map(len, cli.values())) == EVENTS
    assert _digests(tmp_path / "cli.db") == _digests(tmp_path / "store.db")
    # again: nothing new; then two new lines at the end of a file: only those
    code, again = await asyncio.to_thread(_import, home, by_cli)
    assert (code, again["events_imported"], again["events_already_present"]) == (1, 0, EVENTS)
    with first.open("ab") as f:
        f.write(b'{"type": "x", "timestamp": "2026-01-01T00:00:00", "data": {"n": 1}}\n' * 2)
    code, more = await asyncio.to_thread(_import, home, by_cli)
    assert (more["events_imported"], more["events_already_present"]) == (2, EVENTS)
    assert hivelog("audit", "--db", by_cli).returncode == 0


async def test_child_parsing_into_postgresql(tmp_path: Path, pg_dsn: str) -> None:  # noqa: F811
    home, _ = _hive_home(tmp_path)
    url = fresh_url(pg_dsn)
    code, summary = await asyncio.to_thread(_import, home, url)
    assert (code, summary["events_imported"], summary["lines_skipped"]) == (1, EVENTS, 3)
    by_store = f"sqlite:///{tmp_path / 'store.db'}"
    await _in_process(home, by_store)
    pg, plain = await _rows(url), await _rows(by_store)
    pg.pop("$imports"), plain.pop("$imports")
    assert pg == plain
    code, again = await asyncio.to_thread(_import, home, url)
    assert (again["events_imported"], again["events_already_present"]) == (0, EVENTS)


def _all_chunks(parser: ParseWorker | ParsePool | InlineParser, jobs: int) -> list[Chunk]:
    async def read() -> list[Chunk]:
        chunks: list[Chunk] = []
        while jobs > sum(c.last for c in chunks):
            chunks.append(await parser.next())
        return chunks

    return asyncio.run(read())


def _processes(count: int) -> ParseWorker | ParsePool:
    return ParseWorker(None) if count == 1 else ParsePool(None, count)


@pytest.mark.parametrize("count", [1, 2])
def test_the_children_send_what_parse_file_yields_and_exit_at_the_end(
    tmp_path: Path, count: int
) -> None:
    """One child, or two with the jobs dealt in turn: the chunks come back in job order,
    each job's as parse_file yields them, and every child ends by itself."""
    home, _ = _hive_home(tmp_path)
    files = sorted(home.glob("**/events.jsonl"))
    jobs = [Job(str(f), f.relative_to(home).as_posix(), frozenset()) for f in files]
    parser = _processes(count)
    try:
        for job in jobs:
            parser.submit(job)
        chunks = _all_chunks(parser, len(jobs))
    finally:
        parser.close()
    children = parser.children
    assert len({c.pid for c in children}) == count
    assert [c.returncode for c in children] == [0] * count  # each at the end of its input
    expected = [chunk for job in jobs for chunk in parse_file(job, None)]
    assert chunks == expected and len(chunks) > len(jobs)  # about one chunk per MiB
    assert sum(len(c.rows) for c in chunks) == EVENTS


@pytest.mark.parametrize("count", [1, 2])
def test_every_child_is_killed_when_the_import_leaves_early(tmp_path: Path, count: int) -> None:
    home, _ = _hive_home(tmp_path)
    parser = _processes(count)
    try:
        for f in sorted(home.glob("**/events.jsonl")):
            parser.submit(Job(str(f), f.relative_to(home).as_posix(), frozenset()))
        first = asyncio.run(parser.next())
        assert first.rows and not first.last
    finally:
        parser.close()  # jobs still open in every child: an error on the way, say
    assert [c.returncode for c in parser.children] == [-signal.SIGKILL] * count


def _children(pid: int) -> list[int]:
    """The parsing processes `pid` has started (its other children are not: at start-up
    croniter's import runs `file` through `platform.architecture`)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(n) for n in text.split() if _is_parser(int(n))]


def _is_parser(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tools.hive_parse" in argv


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_the_parsing_process(tmp_path: Path) -> None:
    home, _ = _hive_home(tmp_path, 4 * EVENTS)  # more to parse: Ctrl-C comes mid-import
    url = f"sqlite:///{tmp_path / 'ctrl_c.db'}"
    parent = subprocess.Popen(
        [sys.executable, "-m", "tools", "import-hive", str(home), "--db", url],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 30
        while not (children := _children(parent.pid)) and parent.poll() is None:
            assert time.monotonic() < deadline, "no parsing process started"
            time.sleep(0.02)
        assert children, "the import ended before a parsing process was seen"
        os.killpg(parent.pid, signal.SIGINT)  # what Ctrl-C sends the foreground group
        assert parent.wait(timeout=60) == 130
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)  # stopped and reaped by the import


def test_a_file_that_cannot_be_read_ends_its_job_with_the_reason(tmp_path: Path) -> None:
    chunks = list(parse_file(Job(str(tmp_path), "x/events.jsonl", frozenset()), None))
    assert len(chunks) == 1 and chunks[0].last and not chunks[0].rows
    assert chunks[0].error is not None and chunks[0].error.startswith("x/events.jsonl: ")


def test_parse_file_digests_are_the_chain_content_digests(tmp_path: Path) -> None:
    """parse_file computes `eventstore.chain.content_digest` inline: the same bytes."""
    home = tmp_path / "hive"
    write_hive_home(home, 2_000, per_session=2_000)
    (first,) = home.glob("**/events.jsonl")
    job = Job(str(first), first.relative_to(home).as_posix(), frozenset())
    found = [row for chunk in parse_file(job, None) for row in chunk.rows]
    assert len(found) == 2_000
    for _, _, data, metadata, digest in found:
        assert digest == content_digest(data, metadata)
