"""The HTTP protocols `hivelog serve` runs: uvicorn's, plus the two guards uvicorn lacks.

Slow or silent clients cannot hold connections forever (issue 12). uvicorn closes idle
kept-alive connections and answers 503 past `limit_concurrency`, but it has no
request-head timeout (a connection that sends nothing, or half a head, stays open), and
it caps a head's size only on h11 (`h11_max_incomplete_event_size`). Each protocol here
adds what its parent lacks:

- `GuardedHttpToolsProtocol` (httptools, the fast C parser; issue 15's stack): a head
  must be complete within `head_timeout` seconds of the connection opening (or of its
  first byte on a kept-alive connection), and a head still incomplete after
  `max_head_bytes` bytes is refused with 431 and the connection closed.
- `HeadTimeoutH11Protocol` (h11, pure Python; where httptools is not installed): the
  same head timeout; the size cap is h11's own, set by `tools/serve.py`.

`protocol_for(kind, seconds)` gives the class with its timeout set.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_SECONDS: Final = 10.0
MAX_HEAD_BYTES: Final = 16 * 1024  # h11's default, stated: a larger request head is refused


def _httptools_installed() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


HTTPTOOLS: Final = _httptools_installed()
# What `hivelog serve` runs unless told otherwise: httptools where the platform has it.
DEFAULT_HTTP: Final = "httptools" if HTTPTOOLS else "h11"

_HEAD_TOO_LARGE: Final = b"Request head too large."
_HEAD_TOO_LARGE_RESPONSE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_HEAD_TOO_LARGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _HEAD_TOO_LARGE
)


# The request line around its target: the longest method, the spaces, " HTTP/1.1\r\n".
_REQUEST_LINE_EXTRA: Final = len("OPTIONS  HTTP/1.1\r\n")


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the cap."""


class _HeadTimer:
    """One connection's head deadline: armed while a head is (partly) to come."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, expire: Any) -> None:
        self._loop, self._seconds, self._expire = loop, seconds, expire
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._handle is None:
            self._handle = self._loop.call_later(self._seconds, self._fire)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._expire()


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete
    within `head_timeout` seconds of the connection opening (or of the first byte of a
    later request on a kept-alive connection)."""

    head_timeout = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer = _HeadTimer(self.loop, self.head_timeout, self._head_timed_out)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer.arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._head_timer.arm()  # a head still (partly) to come: keep its deadline
        else:
            self._head_timer.disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.disarm()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def _httptools_protocol() -> type[Any]:
    """The guarded httptools protocol (built only where httptools is installed)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a head deadline and a head-size cap.

        Between requests the connection waits for a head: from the connection opening,
        and again once a request's body is complete. While it waits, the first byte
        arms the deadline and every byte counts toward the cap, so an endless head is
        refused once more than `max_head_bytes` have arrived, before the parser buffers
        it all; a complete head disarms the deadline and is measured itself, so a head
        over the cap that arrived in one read is refused too, before the app sees it.
        Both refusals are 431 and a close.
        """

        head_timeout = HEADER_TIMEOUT_SECONDS
        max_head_bytes = MAX_HEAD_BYTES

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer = _HeadTimer(self.loop, self.head_timeout, self._head_timed_out)
            self._awaiting_head = True
            self._head_bytes = 0
            self._head_too_large = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer.arm()

        def data_received(self, data: bytes) -> None:
            if self._awaiting_head:
                self._head_timer.arm()
                self._head_bytes += len(data)
            super().data_received(data)
            if (
                self._awaiting_head
                and self._head_bytes > self.max_head_bytes
                and not self.transport.is_closing()
            ):
                self._head_too_large = True
                self._head_timer.disarm()
                self.send_400_response("")

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._head_timer.disarm()
            # A head that arrived whole in one read was never counted above: measure it
            # (request line and header lines, as sent) before any app sees it.
            size = len(self.url) + _REQUEST_LINE_EXTRA + 2
            for name, value in self.headers:
                size += len(name) + len(value) + 4
            if size > self.max_head_bytes:
                self._head_too_large = True
                raise _HeadTooLarge  # stops the parser; uvicorn then answers via send_400
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            if self._head_too_large:
                self.transport.write(_HEAD_TOO_LARGE_RESPONSE)
                self.transport.close()
                return
            super().send_400_response(msg)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._awaiting_head = True
            self._head_bytes = 0

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.disarm()
            super().connection_lost(exc)

        def _head_timed_out(self) -> None:
            if self.transport.is_closing() or not self._awaiting_head:
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self._head_timer.arm()  # a response still going out: close after it, not in it
                return
            self.transport.close()

    return GuardedHttpToolsProtocol


def protocol_for(kind: str, head_timeout: float) -> type[asyncio.Protocol]:
    """The protocol class for `kind` ("httptools" or "h11") with its head deadline set."""
    if kind == "httptools":
        if not HTTPTOOLS:
            raise ValueError("httptools is not installed here; use h11")
        base: type[Any] = _httptools_protocol()
    elif kind == "h11":
        base = HeadTimeoutH11Protocol
    else:
        raise ValueError(f"unknown HTTP protocol {kind!r}: use httptools or h11")
    return type(base.__name__, (base,), {"head_timeout": head_timeout})
