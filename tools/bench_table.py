"""The result table every `hivelog bench` target prints: one row per measurement,
set beside the baseline measured in the same run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import orjson


@dataclass
class Row:
    measurement: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def _number(value: float) -> str:
    if value != value:  # NaN: a figure not measured (its unit column says why)
        return ""
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def show(rows: Sequence[Row], title: str, *, as_json: bool, footer: Sequence[str] = ()) -> None:
    """Print the rows as JSON (for scripts) or as a table with a short footer."""
    if as_json:
        print(orjson.dumps([asdict(r) for r in rows], option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("measurement", "hivelog", "baseline", "ratio", "target", "met"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for r in rows:
        table.add_row(
            r.measurement,
            f"{_number(r.value)} {r.unit}",
            "" if r.baseline is None else _number(r.baseline),
            "" if r.ratio is None else f"{r.ratio:,.2f}x",
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
    Console(width=160).print(table)
    for line in footer:
        print(line)
