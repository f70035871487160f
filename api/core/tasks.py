"""Stopping background tasks so that a racing cancel can never be swallowed.

On Python 3.11 `asyncio.wait_for` (and some library code) can swallow a
cancellation that lands just as the awaited thing completes; a stop that cancels
once and then awaits forever hangs. `stop_task` cancels again until the task is
really done, with a bound on the time it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

log = logging.getLogger("hivelog.tasks")

STOP_ROUNDS = 200  # x 25 ms: a task gets 5 s to honour its cancellation


async def stop_task(task: asyncio.Task[object] | asyncio.Task[None] | None) -> None:
    """Cancel `task` until it is done; never raises the task's own exception."""
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()  # retrieve it: no "exception was never retrieved"
        return
    for _ in range(STOP_ROUNDS):
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=0.025)
        if done:
            break
    else:
        log.error("task %s did not stop within 5 s of being cancelled", task.get_name())
        return
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()


async def stop_tasks(tasks: Collection[asyncio.Task[Any]]) -> None:
    """`stop_task` for many at once: all cancelled together, so stopping a thousand
    in-flight tasks costs one wait, not a thousand in a row."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(STOP_ROUNDS):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.025)
    else:
        if pending:
            log.error("%d tasks did not stop within 5 s of being cancelled", len(pending))
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
