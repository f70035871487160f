"""`hivelog serve`'s stack: uvloop and httptools where installed, each protocol with its
head guards (whose behaviour against a real server is tests/api/http/test_timeouts.py)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from tools import http_protocols, serve


def test_the_loop_is_uvloop_exactly_when_it_is_installed() -> None:
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    assert ("uvloop" if has_uvloop else "asyncio") == serve.LOOP
    assert serve.LOOP in serve.STACK
    loop = serve.loop_factory()()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert ("uvloop" in type(loop).__module__) is has_uvloop
    finally:
        loop.close()


def test_the_protocol_is_httptools_exactly_when_it_is_installed() -> None:
    has_httptools = importlib.util.find_spec("httptools") is not None
    assert ("httptools" if has_httptools else "h11") == http_protocols.DEFAULT_HTTP
    assert http_protocols.DEFAULT_HTTP in serve.STACK


@pytest.mark.parametrize("kind", ["httptools", "h11"])
def test_each_protocol_keeps_its_head_timeout(kind: str) -> None:
    if kind == "httptools" and not http_protocols.HTTPTOOLS:
        pytest.skip("httptools is not installed")
    protocol = serve.protocol_with_head_timeout(3.0, kind)
    assert protocol.__dict__["head_timeout"] == 3.0
    parent = "HttpToolsProtocol" if kind == "httptools" else "H11Protocol"
    assert parent in [c.__name__ for c in protocol.__mro__]


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown HTTP protocol"):
        http_protocols.protocol_for("spdy", 1.0)
