"""`hivelog bench tools`: the hive home it writes is one import-hive reads cleanly (every
layout, no problems), and its rows set the figure per 1M events beside the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from eventstore import open_store
from tests.support.tools_support import hivelog
from tools.bench_tools import Timing, _rows, write_hive_home
from tools.import_hive import Importer, Summary, find_sessions


def test_the_generated_home_imports_cleanly(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "hive"
    sessions = write_hive_home(home, 1_500, per_session=250)
    assert sessions == 6
    layouts = {p.relative_to(home).parts[0] for p in home.glob("**/events.jsonl")}
    assert layouts == {"queens", "colonies", "agents"}
    r = hivelog("import-hive", str(home), "--db", db_url, "--json", "--timezone", "UTC")
    summary: dict[str, Any] = orjson.loads(r.stdout)
    assert r.returncode == 0, summary
    assert (summary["events_imported"], summary["sessions_imported"]) == (1_500, 6)
    assert summary["problem_count"] == 0 and summary["colonies_found"] == 3
    assert hivelog("audit", "--db", db_url).returncode == 0


def test_quick_rows_are_scaled_to_the_1m_target() -> None:
    timing = Timing("sqlite", [3.0, 2.0, 4.0], [1.0], [1.0, 1.0, 1.0], [0.5])
    imp, audit = _rows(timing, 200_000)
    assert "scaled x5" in imp.measurement and imp.value == 3.0 and imp.ratio == 3.0
    # a scaled import time decides nothing (its fixed costs scale too; the import is not
    # linear): neither under the target nor over it
    assert (imp.seconds_per_1m, imp.met) == (15.0, None)
    slow, _ = _rows(Timing("sqlite", [4.0], [1.0], [1.0], [1.0]), 200_000)
    assert (slow.seconds_per_1m, slow.met) == (20.0, None)
    assert (audit.seconds_per_1m, audit.met) == (5.0, True)
    (full, _) = _rows(Timing("sqlite", [16.0], [1.0], [2.0], [1.0]), 1_000_000)
    assert "scaled" not in full.measurement and (full.seconds_per_1m, full.met) == (16.0, False)
    pg, _ = _rows(Timing("postgresql", [8.0], [2.0], [], []), 1_000_000, versus=timing)
    assert "vs sqlite's" in pg.measurement and pg.baseline == 3.0


async def _streams(url: str) -> dict[str, list[tuple[Any, ...]]]:
    store = await open_store(url)
    try:
        found: dict[str, list[tuple[Any, ...]]] = {}
        for e in await store.read_all(0, 100_000):
            data = e.data_json if not e.stream_id.startswith("$") else e.type
            found.setdefault(e.stream_id, []).append(
                (e.version, e.event_id, e.type, data, e.metadata_json)
            )
        return found
    finally:
        await store.close()


async def test_bulk_import_stores_what_the_store_path_stores(tmp_path: Path) -> None:
    """The command line's grouped transactions (eventstore/bulk.py) and the importer's
    store-only path (`Importer.session`) store the same events, byte for byte."""
    home = tmp_path / "hive"
    write_hive_home(home, 1_200, per_session=300)
    by_cli = f"sqlite:///{tmp_path / 'cli.db'}"
    r = hivelog("import-hive", str(home), "--db", by_cli, "--timezone", "UTC")
    assert r.returncode == 0, r.stderr
    by_store = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(by_store)
    summary = Summary()
    importer = Importer(store, home, ZoneInfo("UTC"), summary, dry_run=False)
    for session in find_sessions(home):
        await importer.session(session, lambda n: None)
    await store.close()
    assert summary.events_imported == 1_200
    cli, plain = await _streams(by_cli), await _streams(by_store)
    cli.pop("$imports"), plain.pop("$imports")  # records also hold colonies (CLI only)
    assert cli == plain and len(cli) == 4
