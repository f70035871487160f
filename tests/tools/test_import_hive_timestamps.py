"""A line whose timestamp cannot be moved to UTC (year 1 with a positive offset, year
9999 with a negative one) is a skipped, reported line, not the end of the import: in
this process and in the parsing children of a big import."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from eventstore import open_store
from tests.support.tools_support import hivelog
from tools.bench_tools import write_hive_home
from tools.hive_lines import LineError, utc_timestamp
from tools.import_hive import PARSE_PROCESS_MIN_BYTES, Importer, Summary, find_sessions

EVENTS = 40_000  # about 10 MiB of lines: over PARSE_PROCESS_MIN_BYTES, so children parse
ZONE = "Asia/Tokyo"  # east of UTC: naive year 1 there is before year 1 in UTC
OUT_OF_RANGE = {
    "0001-01-01T00:00:00+01:00": None,
    "9999-12-31T23:59:59-01:00": None,
    "0001-01-01T00:00:00": ZoneInfo(ZONE),
}


def _line(timestamp: str) -> bytes:
    return orjson.dumps({"type": "x", "stream_id": "queen", "data": {}, "timestamp": timestamp})


def _home(folder: Path, events: int) -> tuple[Path, Path, list[int]]:
    """A home whose first file ends with one line per out-of-range timestamp; those
    lines' numbers."""
    home = folder / "hive"
    write_hive_home(home, events, per_session=10_000)
    first = sorted(home.glob("**/events.jsonl"))[0]
    count = len(first.read_bytes().splitlines())
    with first.open("ab") as f:
        f.writelines(_line(timestamp) + b"\n" for timestamp in OUT_OF_RANGE)
    return home, first, [count + n for n in range(1, len(OUT_OF_RANGE) + 1)]


@pytest.mark.parametrize(("timestamp", "tz"), OUT_OF_RANGE.items())
def test_a_timestamp_out_of_range_in_utc_is_a_line_error(
    timestamp: str, tz: dt.tzinfo | None
) -> None:
    with pytest.raises(LineError, match="out of range"):
        utc_timestamp(timestamp, tz)


async def test_in_process_parsing_skips_and_reports_the_line(tmp_path: Path) -> None:
    home, first, bad = _home(tmp_path, 300)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = await open_store(url)
    summary = Summary(sessions_found=len(find_sessions(home)))
    try:
        importer = Importer(store, home, ZoneInfo(ZONE), summary, dry_run=False)
        await importer.sessions(find_sessions(home), lambda n: None)
    finally:
        await store.close()
    source = first.relative_to(home).as_posix()
    assert [(p["source"], p["line"]) for p in summary.problems] == [(source, n) for n in bad]
    assert (summary.events_imported, summary.lines_skipped) == (300, len(bad))


def test_parsing_children_skip_and_report_the_line(tmp_path: Path) -> None:
    home, first, bad = _home(tmp_path, EVENTS)
    assert sum(f.stat().st_size for f in home.glob("**/events.jsonl")) >= PARSE_PROCESS_MIN_BYTES
    url = f"sqlite:///{tmp_path / 'log.db'}"
    done = hivelog("import-hive", str(home), "--db", url, "--timezone", ZONE, "--json")
    assert done.returncode == 1, done.stderr.decode()  # problems listed, not a failure
    summary = orjson.loads(done.stdout)
    source = first.relative_to(home).as_posix()
    assert [(p["source"], p["line"]) for p in summary["problems"]] == [(source, n) for n in bad]
    assert all("out of range" in p["reason"] for p in summary["problems"])
    assert (summary["events_imported"], summary["lines_skipped"]) == (EVENTS, len(bad))
    assert hivelog("audit", "--db", url).returncode == 0
