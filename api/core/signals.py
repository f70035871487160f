"""Run a callback as soon as the process is asked to exit, before the server drains.

uvicorn stops accepting connections on SIGTERM/SIGINT, waits for the requests in
flight, and only then runs the app's shutdown. Work that should stop at once (the
scheduler's fires only compete with the draining requests) hooks in here. The
handler chains to whatever was installed before (uvicorn's), so the server still
shuts down as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any


def on_exit_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` in the event loop on SIGTERM/SIGINT; returns the undo."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        prev = previous.get(sig)
        if callable(prev):
            prev(sig, frame)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: nothing to chain
            previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, prev in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, prev)

    return restore
