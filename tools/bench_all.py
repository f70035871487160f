"""`hivelog bench all`: every bench target, then ONE table of issue 15's figures.

Each target runs as its own `hivelog bench WHAT --json` process (a clean
interpreter and event loop each, so one target's leftovers cannot skew the next);
its JSON is kept as recorded and `assemble` (pure) picks issue 15's figures out of
it, sets each beside its target and says whether it is met. A target whose
bench-only packages are missing is reported as skipped with the install command,
not as a failure; a figure no target measures (yet) says so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tools.bench import INSTALL_HINT
from tools.bench_table import Row, show
from tools.cli_args import BENCH_TARGETS

TARGET_TIMEOUT_SECONDS = 600.0  # a hung target is reported, not waited on forever
SKIP_HINT = "skipped: pip install -e '.[bench]'"


@dataclass(frozen=True)
class Outcome:
    """What one target's process left: its parsed JSON, or why there is none."""

    data: Any = None
    skipped: str = ""
    failed: str = ""
    seconds: float = 0.0


# ---- picking figures out of recorded results (pure) ------------------------------------


def _rows(outcome: Outcome | None) -> list[dict[str, Any]]:
    data = None if outcome is None else outcome.data
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _find(outcome: Outcome | None, *needles: str) -> dict[str, Any] | None:
    """The first row whose measurement contains every needle."""
    for row in _rows(outcome):
        name = str(row.get("measurement", ""))
        if all(n in name for n in needles):
            return row
    return None


@dataclass(frozen=True)
class Figure:
    """One line of issue 15's table: where its number comes from and the bar it must clear."""

    name: str
    bench: str  # the target that measures it ("" when none does yet)
    target: str
    pick: Callable[[Mapping[str, Outcome]], Row | None]


def _ratio_row(name: str, row: dict[str, Any] | None, unit: str) -> Row | None:
    if row is None or row.get("ratio") is None:
        return None
    return Row(name, float(row["value"]), unit, row.get("baseline"), float(row["ratio"]))


def _timers(key: str, base_key: str, unit: str) -> Callable[[Mapping[str, Outcome]], Row | None]:
    def pick(results: Mapping[str, Outcome]) -> Row | None:
        outcome = results.get("timers")
        data = None if outcome is None else outcome.data
        if not isinstance(data, dict) or data.get(key) is None:
            return None
        value = float(data[key])
        base = data.get(base_key)
        ratio = value / float(base) if base else None
        return Row("", value, unit, None if base is None else float(base), ratio)

    return pick


def _from(bench: str, *needles: str, unit: str) -> Callable[[Mapping[str, Outcome]], Row | None]:
    return lambda results: _ratio_row("", _find(results.get(bench), *needles), unit)


# A floor's row (tools/bench_floors.py): no target of its own; it says how far any durable
# implementation could get on this machine, beside the figures it bounds.
REFERENCE = "reference"
FULL_SIZE_ONLY = "judged at 1M only"  # a figure's note: neither "met" nor "missed" follows


def _tools(needle: str, *, linear: bool) -> Callable[[Mapping[str, Outcome]], Row | None]:
    """A `bench tools` row as seconds per 1M events; a --quick run (fewer events) is
    scaled to 1M, and the row says so (and, for a tool not quite linear in the events,
    that the scaled figure decides nothing: its fixed costs scale with it, so it can be
    far above the full-size time, and was below it when the import was not linear)."""

    def pick(results: Mapping[str, Outcome]) -> Row | None:
        row = _find(results.get("tools"), needle)
        if row is None or not row.get("events") or row.get("seconds_per_1m") is None:
            return None
        events = int(row["events"])
        scale = 1_000_000 / events
        base = row.get("baseline")
        note = ""
        if events != 1_000_000:
            bound = "" if linear else f"; {FULL_SIZE_ONLY}"
            note = f"(scaled from {events:,} events{bound})"
        return Row(
            note,
            float(row["seconds_per_1m"]),
            "s",
            None if base is None else float(base) * scale,
            None if row.get("ratio") is None else float(row["ratio"]),
        )

    return pick


FIGURES: tuple[Figure, ...] = (
    Figure(
        "PostgreSQL 32 writers vs SQLite 32 writers",
        "store",
        ">= 1.0x",
        # the row measured interleaved with SQLite's own 32 writers, on a fresh file each
        _from("store", "postgresql: 32 concurrent", "vs sqlite", unit="events/s"),
    ),
    Figure(
        "PostgreSQL 2 nodes x 16 writers vs 1 node x 32",
        "store",
        ">= 1.0x",
        _from("store", "two nodes", unit="events/s"),
    ),
    Figure(
        "floor: bare PostgreSQL group commit vs bare SQLite's, 32 writers",
        "store",
        REFERENCE,
        _from("store", "floor: bare postgresql group commit vs", unit="events/s"),
    ),
    Figure(
        "floor: bare PostgreSQL group commit, 2 connections x 16 vs 1 x 32",
        "store",
        REFERENCE,
        _from("store", "floor: bare postgresql group commit, two connections", unit="events/s"),
    ),
    Figure(
        "SQLite group commit, 32 writers, vs one commit per event",
        "store",
        ">= 10x",
        _from("store", "sqlite: 32 concurrent", unit="events/s"),
    ),
    Figure(
        "events/history?limit=2000 vs bare Starlette, same bytes",
        "http",
        ">= 0.5x",
        _from("http", "events/history?limit=", "throughput", unit="req/s"),
    ),
    Figure(
        "POST /api/sessions vs bare Starlette, 16 connections",
        "sessions",
        ">= 0.5x",
        _from("sessions", "POST /api/sessions", "16 connection", unit="req/s"),
    ),
    Figure(
        "floor: bare endpoint + bare durable commit of 3 events vs bare, 16 connections",
        "sessions",
        REFERENCE,
        _from("sessions", "floor: bare endpoint", unit="req/s"),
    ),
    Figure(
        "timer CPU per fire vs one task per timer",
        "timers",
        "<= 200 us",
        _timers("cpu_per_fire_us", "baseline_cpu_per_fire_us", "us"),
    ),
    Figure(
        "timer lateness p99",
        "timers",
        "<= 50 ms",
        _timers("lateness_p99_ms", "baseline_p99_ms", "ms"),
    ),
    Figure(
        "hivelog import-hive, 1M events",
        "tools",
        "<= 15 s",
        _tools("sqlite: hivelog import-hive", linear=False),
    ),
    Figure(
        "hivelog audit, 1M events", "tools", "<= 8 s", _tools("sqlite: hivelog audit", linear=True)
    ),
)


def met(target: str, row: Row) -> bool | None:
    """Whether `row` clears `target` (">= 1.0x" reads the ratio; "<= 200 us" the value)."""
    op, _, rest = target.partition(" ")
    number_text = rest.partition(" ")[0]
    try:
        bar = float(number_text.rstrip("x"))
    except ValueError:
        return None
    measured = row.ratio if number_text.endswith("x") else row.value
    if measured is None:
        return None
    return measured >= bar if op == ">=" else measured <= bar if op == "<=" else None


def why_missing(figure: Figure, results: Mapping[str, Outcome]) -> str:
    if not figure.bench:
        return "not measured: no bench target yet"
    outcome = results.get(figure.bench)
    if outcome is None:
        return f"not run: bench {figure.bench}"
    if outcome.skipped:
        return outcome.skipped
    if outcome.failed:
        return f"failed: bench {figure.bench} ({outcome.failed})"
    if figure.bench == "store" and "PostgreSQL" in figure.name:
        return "not measured: give --db postgresql://..."
    return f"not in bench {figure.bench}'s output"


def assemble(results: Mapping[str, Outcome]) -> list[Row]:
    """Issue 15's figures from recorded target results: one row each, in the issue's order."""
    rows: list[Row] = []
    for figure in FIGURES:
        picked = figure.pick(results)
        if picked is None:
            rows.append(
                Row(figure.name, float("nan"), why_missing(figure, results), target=figure.target)
            )
            continue
        # a pick may add a note to the name (e.g. a --quick figure scaled to the target's size)
        picked.measurement = f"{figure.name} {picked.measurement}".strip()
        picked.target = figure.target
        picked.met = met(figure.target, picked)
        if FULL_SIZE_ONLY in picked.measurement:
            picked.met = None
        rows.append(picked)
    return rows


# ---- running the targets (I/O) -------------------------------------------------------------


def parse_output(stdout: str) -> Any:
    """A target's JSON: from the first line that opens an array or object."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("[", "{")):
            return orjson.loads("\n".join(lines[i:]))
    raise ValueError("no JSON in the output")


def run_target(what: str, args: argparse.Namespace) -> Outcome:
    argv = [sys.executable, "-m", "tools.cli", "bench", what, "--json"]
    if args.quick:
        argv.append("--quick")
    if args.db:
        argv += ["--db", args.db]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TARGET_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(failed=f"timed out after {TARGET_TIMEOUT_SECONDS:g} s")
    seconds = time.perf_counter() - started
    if done.returncode == 2 and INSTALL_HINT in done.stderr:
        return Outcome(skipped=SKIP_HINT, seconds=seconds)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(failed=f"exit {done.returncode}: {last[:200]}", seconds=seconds)
    try:
        return Outcome(data=parse_output(done.stdout), seconds=seconds)
    except ValueError as exc:
        return Outcome(failed=str(exc), seconds=seconds)


def run(args: argparse.Namespace, targets: Sequence[str] = tuple(BENCH_TARGETS)) -> int:
    results: dict[str, Outcome] = {}
    for what in targets:
        print(f"bench {what} ...", file=sys.stderr, flush=True)
        results[what] = run_target(what, args)
        outcome = results[what]
        state = outcome.skipped or outcome.failed or "done"
        print(f"bench {what}: {state} in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
    show(
        assemble(results),
        "hivelog bench all: issue 15's figures (ratio = hivelog / baseline, same run)",
        as_json=args.json,
        footer=tuple(
            f"bench {w}: {o.skipped or o.failed or 'ok'} ({o.seconds:.0f} s)"
            for w, o in results.items()
        ),
    )
    return 0 if not any(o.failed for o in results.values()) else 1
