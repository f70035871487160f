"""`hivelog serve`'s stack: uvloop where installed, h11 with the head timeout (whose
behaviour against a real server is tests/api/http/test_timeouts.py)."""

from __future__ import annotations

import asyncio
import importlib.util

from tools import serve


def test_the_loop_is_uvloop_exactly_when_it_is_installed() -> None:
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    assert ("uvloop" if has_uvloop else "asyncio") == serve.LOOP
    assert serve.LOOP in serve.STACK and "h11" in serve.STACK
    loop = serve.loop_factory()()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert ("uvloop" in type(loop).__module__) is has_uvloop
    finally:
        loop.close()


def test_the_protocol_keeps_the_head_timeout() -> None:
    protocol = serve.protocol_with_head_timeout(3.0)
    assert issubclass(protocol, serve.HeadTimeoutH11Protocol)
    assert protocol.head_timeout == 3.0
