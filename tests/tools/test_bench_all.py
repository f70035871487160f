"""`hivelog bench all`: the one table assembled from recorded target results (pure;
no figure is timed here), the skip line, and the dispatcher taking `all`."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tools.bench_all import FIGURES, SKIP_HINT, Outcome, assemble, met, parse_output
from tools.bench_table import Row
from tools.cli import build_parser

STORE = [
    {"measurement": "sqlite: 1 writer, durable single-event appends", "value": 900.0,
     "unit": "events/s", "baseline": 800.0, "ratio": 1.125},
    {"measurement": "sqlite: 32 concurrent single-event writers (group commit)",
     "value": 14772.0, "unit": "events/s", "baseline": 2100.0, "ratio": 7.03},
    {"measurement": "postgresql: 32 concurrent single-event writers (group commit)",
     "value": 900.0, "unit": "events/s", "baseline": 1400.0, "ratio": 0.64},
    {"measurement": "postgresql: 32 concurrent single-event writers vs sqlite's 32 "
     "(both group commit)", "value": 1416.0, "unit": "events/s", "baseline": 14772.0,
     "ratio": 0.0959},
    {"measurement": "postgresql: 32 writers on two nodes (16 + 16) vs on one node",
     "value": 1200.0, "unit": "events/s", "baseline": 1416.0, "ratio": 0.85},
    {"measurement": "floor: bare postgresql group commit vs bare sqlite's, 32 writers",
     "value": 22000.0, "unit": "events/s", "baseline": 35000.0, "ratio": 0.63,
     "target": "reference"},
    {"measurement": "floor: bare postgresql group commit, two connections x 16 writers vs "
     "one x 32", "value": 21000.0, "unit": "events/s", "baseline": 22000.0, "ratio": 0.95,
     "target": "reference"},
    {"measurement": "postgresql: 32 writers vs bare postgresql group commit (the same)",
     "value": 9000.0, "unit": "events/s", "baseline": 22000.0, "ratio": 0.41,
     "target": "reference"},
]  # fmt: skip
HTTP = [
    {"measurement": "events/history?limit=2000, 1,000,000-event session, 703 KiB body, "
     "wrk -c16: throughput", "value": 145.0, "unit": "req/s", "baseline": 1847.0,
     "ratio": 0.0785},
]  # fmt: skip
SESSIONS = [
    {"measurement": "hivelog's create (POST) vs that floor, 16 connections", "value": 240.0,
     "unit": "req/s", "baseline": 700.0, "ratio": 0.34, "target": "reference"},
    {"measurement": "floor: bare endpoint + bare durable group commit of 3 events, "
     "16 connections, vs bare Starlette endpoint", "value": 700.0, "unit": "req/s",
     "baseline": 1000.0, "ratio": 0.7, "target": "reference"},
    {"measurement": "POST /api/sessions (3 durable events each), 1 connection(s) vs bare",
     "value": 50.0, "unit": "req/s", "baseline": 100.0, "ratio": 0.5},
    {"measurement": "POST /api/sessions (3 durable events each), 16 connection(s) vs bare",
     "value": 240.0, "unit": "req/s", "baseline": 1000.0, "ratio": 0.24},
]  # fmt: skip
TOOLS = [
    {"measurement": "sqlite: hivelog import-hive, 200,000 events (scaled x5 to 1M: --quick), "
     "vs read + orjson.loads + bare executemany", "value": 4.0, "unit": "s", "baseline": 1.0,
     "ratio": 4.0, "events": 200_000, "seconds_per_1m": 20.0},
    {"measurement": "sqlite: hivelog audit, 200,000 events (scaled x5 to 1M: --quick), "
     "vs SELECT every row + orjson.loads", "value": 1.5, "unit": "s", "baseline": 0.5,
     "ratio": 3.0, "events": 200_000, "seconds_per_1m": 7.5},
]  # fmt: skip
TIMERS = {"cpu_per_fire_us": 714.0, "baseline_cpu_per_fire_us": 52.0, "lateness_p99_ms": 12.0,
          "baseline_p99_ms": 3.0}  # fmt: skip


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {r.measurement: r for r in rows}


def test_the_issue_table_from_recorded_results() -> None:
    rows = assemble(
        {
            "store": Outcome(STORE),
            "http": Outcome(HTTP),
            "sessions": Outcome(SESSIONS),
            "timers": Outcome(TIMERS),
            "subscriptions": Outcome([]),
            "tools": Outcome(TOOLS),
        }
    )
    # a --quick tools figure is scaled to 1M and says so in its name
    names = [r.measurement.partition(" (scaled from 200,000 events")[0] for r in rows]
    assert names == [f.name for f in FIGURES]
    table = by_name(rows)
    pg = table["PostgreSQL 32 writers vs SQLite 32 writers"]
    assert (pg.value, pg.baseline, pg.met) == (1416.0, 14772.0, False)
    assert pg.ratio == 0.0959  # the interleaved row, not the one beside aiosqlite's baseline
    two = table["PostgreSQL 2 nodes x 16 writers vs 1 node x 32"]
    assert (two.ratio, two.met) == (0.85, False)
    group = table["SQLite group commit, 32 writers, vs one commit per event"]
    assert (group.ratio, group.target, group.met) == (7.03, ">= 10x", False)
    history = table["events/history?limit=2000 vs bare Starlette, same bytes"]
    assert (history.value, history.baseline, history.met) == (145.0, 1847.0, False)
    post = table["POST /api/sessions vs bare Starlette, 16 connections"]
    assert (post.ratio, post.met) == (0.24, False)  # the 16-connection row, not the 1
    # the floors stand beside the figures they bound, as references: never met or missed
    floor = table["floor: bare PostgreSQL group commit vs bare SQLite's, 32 writers"]
    assert (floor.value, floor.ratio, floor.target, floor.met) == (22000.0, 0.63, "reference", None)
    pair = table["floor: bare PostgreSQL group commit, 2 connections x 16 vs 1 x 32"]
    assert (pair.ratio, pair.met) == (0.95, None)
    bare = table["floor: bare endpoint + bare durable commit of 3 events vs bare, 16 connections"]
    assert (bare.value, bare.baseline, bare.ratio, bare.met) == (700.0, 1000.0, 0.7, None)
    cpu = table["timer CPU per fire vs one task per timer"]
    assert (cpu.value, cpu.baseline, cpu.met) == (714.0, 52.0, False)
    late = table["timer lateness p99"]
    assert (late.value, late.met) == (12.0, True)
    imp = table["hivelog import-hive, 1M events (scaled from 200,000 events; judged at 1M only)"]
    assert (imp.value, imp.baseline, imp.ratio, imp.met) == (20.0, 5.0, 4.0, None)
    audit = table["hivelog audit, 1M events (scaled from 200,000 events)"]
    assert (audit.value, audit.baseline, audit.ratio, audit.met) == (7.5, 2.5, 3.0, True)


def test_a_scaled_import_under_the_target_is_not_called_met() -> None:
    fast = [dict(TOOLS[0], seconds_per_1m=10.0)]
    (imp,) = [r for r in assemble({"tools": Outcome(fast)}) if "import" in r.measurement]
    assert imp.value == 10.0 and imp.met is None  # a scaled import decides nothing


def test_full_size_tools_figures_are_not_scaled() -> None:
    full = [dict(r, events=1_000_000, seconds_per_1m=r["value"]) for r in TOOLS]
    table = by_name(assemble({"tools": Outcome(full)}))
    imp = table["hivelog import-hive, 1M events"]
    assert (imp.value, imp.baseline, imp.met) == (4.0, 1.0, True)
    assert table["hivelog audit, 1M events"].value == 1.5


def test_skipped_failed_and_sqlite_only_runs_say_why() -> None:
    rows = by_name(
        assemble(
            {
                "store": Outcome(STORE[:2]),  # no --db postgresql://...
                "http": Outcome(skipped=SKIP_HINT),
                "sessions": Outcome(failed="exit 1: boom"),
            }
        )
    )
    assert "--db postgresql://" in rows["PostgreSQL 32 writers vs SQLite 32 writers"].unit
    assert rows["SQLite group commit, 32 writers, vs one commit per event"].met is False
    history = rows["events/history?limit=2000 vs bare Starlette, same bytes"]
    assert history.unit == "skipped: pip install -e '.[bench]'" and history.met is None
    assert "failed" in rows["POST /api/sessions vs bare Starlette, 16 connections"].unit
    assert "not run" in rows["timer lateness p99"].unit
    assert "not run: bench tools" in rows["hivelog audit, 1M events"].unit
    imp = rows["hivelog import-hive, 1M events"]
    assert math.isnan(imp.value) and imp.met is None


@given(st.floats(0.01, 1000), st.floats(0.01, 1000))
def test_met_reads_ratio_for_x_targets_and_value_otherwise(value: float, ratio: float) -> None:
    row = Row("f", value, "us", 1.0, ratio)
    assert met(">= 0.5x", row) is (ratio >= 0.5)
    assert met("<= 200 us", row) is (value <= 200)
    assert met("report", row) is None


def test_parse_output_skips_progress_lines() -> None:
    assert parse_output('building ...\n[\n {"a": 1}\n]\n') == [{"a": 1}]
    assert parse_output('{"cpu_per_fire_us": 3}') == {"cpu_per_fire_us": 3}


def test_bench_all_parses() -> None:
    args = build_parser().parse_args(["bench", "all", "--quick", "--json"])
    assert (args.what, args.quick, args.json) == ("all", True, True)
