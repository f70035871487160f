"""Coalescing: calls that arrive while one round trip is in flight ride the next together.

The scheduler claims and releases one `fire:<session>` lease per session it fires;
at 1,000 fires/s, one transaction (and one fsync) per claim queued hundreds of
tasks on the connection pool, and everything else that needs a connection (the
health probe, the follower) waited behind them. A `Coalescer` turns the claims
that pile up meanwhile into one call, the way the group commit does for appends:
one round trip per batch instead of one per caller, each caller still getting its
own result or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """`await submit(item)`: the result `run` gave for that item, in a batch with others.

    `run(items)` returns one result per item, in order; if it raises, every caller of
    that batch gets the error. A caller cancelled before its batch was sent is dropped;
    one cancelled later simply gets nothing (the batch still runs for the others).
    """

    def __init__(
        self, run: Callable[[list[Item]], Awaitable[list[Result]]], max_batch: int, name: str
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._name = name
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self._name)
        return await done

    async def settle(self) -> None:
        """Wait until every call made so far has its answer (before closing the store)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task})

    async def _drain(self) -> None:
        while True:
            self._waiting = [w for w in self._waiting if not w[1].cancelled()]
            if not self._waiting:
                return
            batch = self._waiting[: self._max_batch]
            self._waiting = self._waiting[self._max_batch :]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # every caller of the batch hears of it
                _fail(batch, exc)
                continue
            except BaseException:  # cancelled (closing): nobody waits forever
                _fail(batch + self._waiting, RuntimeError(f"{self._name} was stopped"))
                self._waiting = []
                raise
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)


def _fail(waiters: list[tuple[Item, asyncio.Future[Result]]], exc: BaseException) -> None:
    for _, done in waiters:
        if not done.done():
            done.set_exception(exc)
