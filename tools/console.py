"""Output shared by the operator tools: JSON on stdout, progress and messages on stderr.

Progress bars go to stderr and only when it is a terminal, so stdout stays clean
for pipes (`hivelog export | gzip`) and scripts never see control characters.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

Advance = Callable[[int], None]


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Advance]:
    """A rich progress bar on stderr (a no-op when stderr is not a terminal)."""
    if not stderr_is_tty():
        yield _ignore
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _ignore(_: int) -> None:
    return None


def error(message: str) -> None:
    """A one-line message for the operator, on stderr."""
    print(f"hivelog: {message}", file=sys.stderr, flush=True)


def stdout_bytes() -> BinaryIO:
    return sys.stdout.buffer


def write_json(value: Any, out: BinaryIO | None = None) -> None:
    """One JSON document (or JSONL line) on stdout, newline-terminated."""
    target = out or stdout_bytes()
    target.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    target.flush()
