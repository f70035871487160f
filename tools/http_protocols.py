"""The HTTP protocols `hivelog serve` runs: uvicorn's, plus the two guards uvicorn lacks.

Slow or silent clients cannot hold connections forever (issue 12). uvicorn closes idle
kept-alive connections and answers 503 past `limit_concurrency`, but it has no
request-head timeout (a connection that sends nothing, or half a head, stays open), and
it caps a head's size only on h11 (`h11_max_incomplete_event_size`). Each protocol here
adds what its parent lacks:

- `GuardedHttpToolsProtocol` (httptools, the fast C parser; issue 15's stack): a head
  must be complete within `head_timeout` seconds of the connection opening (or of its
  first byte on a kept-alive connection); a head over `max_head_bytes` as sent, or a
  chunked body's framing and trailers over it, is refused with 431 and the connection
  closed, never in the middle of a response.
- `HeadTimeoutH11Protocol` (h11, pure Python; where httptools is not installed): the
  same head timeout; the size cap is h11's own, set by `tools/serve.py`.

Both also close a connection still sending the rest of a request `head_timeout`
seconds after its response was complete.

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
    later request on a kept-alive connection), and one still sending the rest of a
    request `head_timeout` seconds after its response was complete (an early answer,
    then a body dripped a byte at a time: uvicorn's keep-alive timer restarts on every
    byte, so nothing else would close it)."""

    head_timeout = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer = _HeadTimer(self.loop, self.head_timeout, self._head_timed_out)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer.arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_pending():
            self._head_timer.arm()  # keep its deadline (not restarted by more bytes)
        else:
            self._head_timer.disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._request_pending() and not self.transport.is_closing():
            self._head_timer.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.disarm()
        super().connection_lost(exc)

    def _request_pending(self) -> bool:
        """A head still (partly) to come, or the rest of a request already answered."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return True
        cycle = self.cycle
        return state is h11.SEND_BODY and cycle is not None and cycle.response_complete

    def _head_timed_out(self) -> None:
        if self._request_pending() and not self.transport.is_closing():
            self.transport.close()


# Framing a chunked body may add per chunk (size line, CRLFs, a short extension) before
# what it adds counts against the cap like a head's bytes.
CHUNK_FRAMING_BYTES: Final = 64


def _httptools_protocol() -> type[Any]:
    """The guarded httptools protocol (built only where httptools is installed)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a head deadline and a cap on the bytes a
        request sends besides its body.

        - While a head is awaited (from the connection opening, and again after each
          request), the first byte arms the deadline and the parser is fed at most the
          bytes left under `max_head_bytes`: a head that does not end within them is
          refused, whether it arrives byte by byte or whole in one read, before the
          parser has buffered more than the cap (it is counted as sent, whitespace
          included). A head that starts in the read that ends the request before it
          may pass by up to that read's length: bounded, not exact.
        - A chunked body's framing and trailers (httptools buffers each trailer line
          and uvicorn keeps them all) count against the same cap, plus
          `CHUNK_FRAMING_BYTES` per chunk: raw bytes read inside a body less the body's
          own bytes.
        - The rest of a request whose response is already complete (an early answer)
          must arrive within the deadline too.

        A refusal answers 431 and closes, unless a response is going out or may still
        come for a request already read whole: that response is never cut or preceded;
        the connection reads nothing more and closes after it (requests queued behind
        it are dropped unanswered, as never started).
        """

        head_timeout = HEADER_TIMEOUT_SECONDS
        max_head_bytes = MAX_HEAD_BYTES

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer = _HeadTimer(self.loop, self.head_timeout, self._head_timed_out)
            self._awaiting_head = True
            self._head_bytes = 0
            self._in_body = False
            self._messages = 0  # requests whose body ended: tells a read inside one body
            self._payload = 0  # body bytes parsed, all requests
            self._framing = 0  # this body's bytes besides its payload (chunked framing)
            self._framing_allowed = 0
            self._refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer.arm()

        def data_received(self, data: bytes) -> None:
            while data and not self._refused:
                if self.transport.is_closing() or self.transport.get_protocol() is not self:
                    return  # closed, or upgraded to a websocket by the read before
                if self._awaiting_head:
                    room = self.max_head_bytes - self._head_bytes
                    if room <= 0:
                        self._refuse()
                        return
                    piece, data = data[:room], data[room:]
                    self._head_timer.arm()
                    self._head_bytes += len(piece)
                    super().data_received(piece)
                elif self._in_body:
                    messages, payload = self._messages, self._payload
                    super().data_received(data)
                    if self._in_body and self._messages == messages:
                        self._framing += len(data) - (self._payload - payload)
                        if self._framing > self._framing_allowed:
                            self._refuse()
                    return
                else:  # after a request that closes the connection: the parser ignores it
                    super().data_received(data)
                    return

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._head_timer.disarm()
            self._in_body = True
            self._framing, self._framing_allowed = 0, self.max_head_bytes
            super().on_headers_complete()

        def on_chunk_header(self) -> None:
            self._framing_allowed += CHUNK_FRAMING_BYTES

        def on_body(self, body: bytes) -> None:
            self._payload += len(body)
            super().on_body(body)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_body = False
            self._messages += 1
            self._head_timer.disarm()
            cycle = self.cycle
            self._awaiting_head = cycle is None or cycle.keep_alive
            self._head_bytes = 0

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._in_body and not self.transport.is_closing():
                self._head_timer.arm()  # answered early: the rest must come in time

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.disarm()
            super().connection_lost(exc)

        def _refuse(self) -> None:
            self._refused = True
            self._head_timer.disarm()
            cycle = self.cycle
            if (
                cycle is not None
                and not cycle.response_complete
                and (cycle.response_started or not self._in_body)
            ):
                cycle.keep_alive = False  # closes once its response is out
                self.pipeline.clear()
                self.flow.pause_reading()
                return
            self.transport.write(_HEAD_TOO_LARGE_RESPONSE)
            self.transport.close()

        def _head_timed_out(self) -> None:
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                self._head_timer.arm()  # a response still going out: close after it, not in it
                return
            if self._awaiting_head or self._in_body:
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
