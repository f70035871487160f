"""Injectable time for the scheduler: the real clock, and a fake one tests move by hand.

The scheduler never reads `time` directly; it asks its clock for "now" and waits
through it. With `FakeClock` a test drives days of schedule in milliseconds, and
the lateness of every fire is exactly zero, so assertions need no timing slack.

Two readings: wall time (`now`, `now_ms`: slots are wall times) and a monotonic one
(`monotonic_ms`: delays such as a retry's backoff, which a wall-clock step must not
stretch). A wait ends after the delay to `until_ms` as computed when it starts,
measured monotonically (asyncio's timers): after a backward step its caller wakes
on time and looks at the wall clock again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...

    def now_ms(self) -> int: ...

    def monotonic_ms(self) -> int:
        """Milliseconds that only go forward, at the wall clock's pace (no epoch)."""
        ...

    async def wait(self, until_ms: int | None, wake: asyncio.Event) -> None:
        """Return at `until_ms` (None: never by itself) or as soon as `wake` is set."""
        ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    async def wait(self, until_ms: int | None, wake: asyncio.Event) -> None:
        delay = None if until_ms is None else max(0.0, (until_ms - self.now_ms()) / 1000)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that lands after `wake` was set, and then a stop waits forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()


class FakeClock:
    """Time stands still until `set`/`advance`; waiters whose delay passed then return.

    Like `RealClock`, a wait lasts the delay to its `until_ms` as computed when it
    started, counted on the monotonic reading: `set`/`advance` move both readings, a
    subclass that steps the wall clock back (`_now_ms` alone) moves only the wall."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self._now_ms = start_ms
        self._monotonic_ms = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (monotonic end, …)

    def now(self) -> float:
        return self._now_ms / 1000

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic_ms(self) -> int:
        return self._monotonic_ms

    def set(self, when_ms: int) -> None:
        if when_ms < self._now_ms:
            raise ValueError("a clock does not go back")
        self._monotonic_ms += when_ms - self._now_ms
        self._now_ms = when_ms
        for until, future in self._waiters:
            if until <= self._monotonic_ms and not future.done():
                future.set_result(None)
        self._waiters = [(u, f) for u, f in self._waiters if not f.done()]

    def advance(self, ms: int) -> None:
        self.set(self._now_ms + ms)

    def next_deadline(self) -> int | None:
        """The wall time the earliest waiter wakes at (what a test jumps to next)."""
        pending = [u for u, f in self._waiters if not f.done()]
        return self._now_ms + min(pending) - self._monotonic_ms if pending else None

    async def wait(self, until_ms: int | None, wake: asyncio.Event) -> None:
        if until_ms is not None and until_ms <= self._now_ms:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if until_ms is not None:
            self._waiters.append((self._monotonic_ms + until_ms - self._now_ms, future))
        woken: asyncio.Future[bool] = asyncio.ensure_future(wake.wait())
        pending: set[asyncio.Future[Any]] = {future, woken}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            future.cancel()
            self._waiters = [(u, f) for u, f in self._waiters if f is not future]
