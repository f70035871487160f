"""`stop_task` / `stop_tasks`: a task that swallows a cancellation (as Python 3.11's
`asyncio.wait_for` can) is cancelled again until it ends; a task that never ends
costs a bounded wait and a log line, not a hang; a task's own error is not raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from api.core import tasks
from api.core.tasks import stop_task, stop_tasks


async def _swallows(times: int, ended: list[int]) -> None:
    """Ignores its first `times` cancellations, then honours the next one."""
    ignored = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ignored += 1
            if ignored > times:
                ended.append(ignored)
                raise


async def test_a_swallowed_cancel_is_repeated_until_the_task_ends() -> None:
    ended: list[int] = []
    task = asyncio.create_task(_swallows(2, ended))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_task(task)
    assert task.cancelled() and ended == [3]


async def test_many_swallowing_tasks_stop_together() -> None:
    ended: list[int] = []
    many = [asyncio.create_task(_swallows(n % 3, ended)) for n in range(50)]
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_tasks(many)
    assert all(t.cancelled() for t in many)
    assert sorted(ended) == sorted(n % 3 + 1 for n in range(50))


async def test_a_task_that_never_ends_costs_a_bounded_wait_and_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tasks, "STOP_ROUNDS", 4)
    released = asyncio.Event()

    async def until_released() -> None:
        while not released.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    stubborn = asyncio.create_task(until_released())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="hivelog.tasks"):
        async with asyncio.timeout(5):
            await stop_task(stubborn)
            await stop_tasks([stubborn])
    assert not stubborn.done()
    assert sum("did not stop" in r.getMessage() for r in caplog.records) == 2
    released.set()
    stubborn.cancel()
    await stubborn  # released: it returns


async def test_a_task_error_is_retrieved_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await stop_task(task)
    await stop_tasks([task])
    assert isinstance(task.exception(), RuntimeError)
