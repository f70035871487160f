"""`hivelog bench tools`: the hive home it writes is one import-hive reads cleanly (every
layout, no problems), and its rows set the figure per 1M events beside the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.support.tools_support import hivelog
from tools.bench_tools import Timing, _rows, write_hive_home


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
    assert (imp.seconds_per_1m, imp.met) == (15.0, True)
    assert (audit.seconds_per_1m, audit.met) == (5.0, True)
    (full, _) = _rows(Timing("sqlite", [16.0], [1.0], [2.0], [1.0]), 1_000_000)
    assert "scaled" not in full.measurement and (full.seconds_per_1m, full.met) == (16.0, False)
    pg, _ = _rows(Timing("postgresql", [8.0], [2.0], [], []), 1_000_000, versus=timing)
    assert "vs sqlite's" in pg.measurement and pg.baseline == 3.0
