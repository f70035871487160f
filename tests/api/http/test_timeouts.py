"""Slow and silent clients against a real `hivelog serve`: heads and bodies that never
complete, heads too large, idle connections, and clients that leave mid-request. Every
test runs on both protocols `serve` can run (httptools, the default where installed,
and h11), since each carries its own head guards (tools/http_protocols.py).

The server runs with 1 s timeouts so the test is quick; every socket read has a
generous bound (a hang detector, not a timing assertion).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, running_server
from tools.http_protocols import HTTPTOOLS, MAX_HEAD_BYTES

FAST = ["--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1"]
BOUND = 20.0  # seconds: far beyond the 1 s timeouts; only a hang reaches it


PROTOCOLS = [
    pytest.param(
        "httptools",
        marks=pytest.mark.skipif(not HTTPTOOLS, reason="httptools is not installed"),
    ),
    "h11",
]


@pytest.fixture(params=PROTOCOLS)
def server(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_server(db_url, tmp_path, [*FAST, "--http", request.param]) as s:
        yield s


def _connect(server: Server) -> socket.socket:
    port = int(server.base_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def _head(server: Server) -> int:
    position: int = httpx.get(f"{server.base_url}/api/health").json()["head_position"]
    return position


def test_half_open_connections_are_closed(server: Server) -> None:
    """Connections that send nothing, or half a request head, are closed by the server."""
    silent = [_connect(server) for _ in range(20)]
    partial = [_connect(server) for _ in range(20)]
    for sock in partial:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
    for sock in silent + partial:
        assert _read_until_closed(sock) == b""
        sock.close()
    # the server still answers
    assert httpx.get(f"{server.base_url}/api/health").status_code == 200


def test_a_body_that_never_completes_gets_408_and_a_close(server: Server) -> None:
    before = _head(server)
    sock = _connect(server)
    sock.sendall(
        b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{}"
    )
    answer = _read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert b"Request body not received within 1 s" in answer
    assert _head(server) == before  # nothing appended


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = _read_until_closed(sock)  # the response, then the close after keep-alive
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_client_leaving_mid_body_is_not_logged_as_an_error(server: Server) -> None:
    for _ in range(5):
        sock = _connect(server)
        sock.sendall(
            b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{}"
        )
        sock.close()
    time.sleep(0.5)
    assert httpx.get(f"{server.base_url}/api/health").status_code == 200
    log = server.log()
    assert "Traceback" not in log and "unhandled error" not in log


def test_a_live_event_stream_outlives_the_body_timeout(server: Server) -> None:
    """The body timeout times body reads only: an SSE client waiting for events (its
    request long complete) is not cut off."""
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        created = client.post("/api/sessions", json={}).json()
        sid = created["session_id"]
        with client.stream("GET", "/api/events", params={"types": "*"}) as stream:
            time.sleep(2.5)  # beyond the 1 s body timeout
            assert client.delete(f"/api/sessions/{sid}").status_code == 200  # stop
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert sid in first and "session_stopped" in first


def _post_with_head_of(size: int) -> bytes:
    """A create request whose head is `size` bytes long (a padding header fills it)."""
    start = b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
    pad_name = b"X-Pad: "
    fill = size - len(start) - len(pad_name) - 4  # the pad line's CRLF and the blank line
    return start + pad_name + b"a" * fill + b"\r\n\r\n" + b"{}"


def _refused(sock: socket.socket) -> bytes:
    """What the server answers before closing, after refusing what we sent."""
    try:
        return _read_until_closed(sock)
    except ConnectionResetError:  # closed while our bytes were still arriving
        return b""
    finally:
        sock.close()


# Deadlines far beyond BOUND: in a test on this server, a close before BOUND comes from
# the size cap, never from a deadline.
PATIENT = ["--header-timeout", "600", "--body-timeout", "600", "--keep-alive-timeout", "600"]


@pytest.fixture(params=PROTOCOLS)
def patient_server(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_server(db_url, tmp_path, [*PATIENT, "--http", request.param]) as s:
        yield s


def test_an_endless_head_is_refused_and_appends_nothing(patient_server: Server) -> None:
    """More than the cap of a head that has not ended: both protocols refuse it (h11's
    cap is uvicorn's, answering 400; httptools' is ours, answering 431), long before any
    deadline."""
    server = patient_server
    before = _head(server)
    sock = _connect(server)
    head = _post_with_head_of(4 * MAX_HEAD_BYTES)
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        sock.sendall(head[: 2 * MAX_HEAD_BYTES])  # no blank line: the head goes on
    answer = _refused(sock)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 431 ", b"HTTP/1.1 400 ")), answer
    assert _head(server) == before
    assert httpx.get(f"{server.base_url}/api/health").status_code == 200


def _sent_before_refused(sock: socket.socket, prefix: bytes, filler: bytes) -> int:
    """Send `prefix`, then `filler` again and again (up to 64 MiB): how much went out
    before the server refused it (a reset, a broken pipe, or its answer and close)."""
    sent = 0
    try:
        sock.sendall(prefix)
        while sent < 64 << 20:
            sock.sendall(filler)
            sent += len(filler)
    except (ConnectionResetError, BrokenPipeError):
        pass
    return sent


def test_endless_trailers_are_refused_and_append_nothing(patient_server: Server) -> None:
    """A chunked body's trailers are buffered by the parser (and kept by uvicorn): they
    count against the head cap, so a client cannot grow the server without bound."""
    server = patient_server
    before = _head(server)
    sock = _connect(server)
    prefix = (
        b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n"
    )
    sent = _sent_before_refused(sock, prefix, b"X-Trailer: " + b"t" * 1000 + b"\r\n")
    answer = _refused(sock)
    assert sent < 16 << 20, f"{sent} bytes of trailers taken"  # socket buffers hold a few MiB
    assert answer == b"" or answer.startswith((b"HTTP/1.1 431 ", b"HTTP/1.1 400 ")), answer
    assert _head(server) == before
    assert httpx.get(f"{server.base_url}/api/health").status_code == 200


@pytest.mark.skipif(not HTTPTOOLS, reason="httptools is not installed")
def test_chunk_framing_beyond_the_cap_is_refused_on_httptools(db_url: str, tmp_path: Path) -> None:
    """Chunk extensions are framing, not body: past the cap (plus a little per chunk)
    they are refused like an endless head."""
    with running_server(db_url, tmp_path, [*PATIENT, "--http", "httptools"]) as server:
        sock = _connect(server)
        prefix = (
            b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = _sent_before_refused(sock, prefix, b"1;ext=" + b"e" * 1000 + b"\r\n \r\n")
        _refused(sock)
        assert sent < 16 << 20, f"{sent} bytes of chunk framing taken"


@pytest.mark.skipif(not HTTPTOOLS, reason="httptools is not installed")
def test_a_whole_head_padded_with_whitespace_is_measured_as_sent(
    db_url: str, tmp_path: Path
) -> None:
    """The parser drops the spaces around a header value; the cap counts them."""
    with running_server(db_url, tmp_path, [*FAST, "--http", "httptools"]) as server:
        before = _head(server)
        for pad in (b"X-Pad: " + b" " * 40_000 + b"a\r\n", b"X-Pad: a" + b" " * 40_000 + b"\r\n"):
            sock = _connect(server)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                sock.sendall(
                    b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                    + pad
                    + b"\r\n{}"
                )
            answer = _refused(sock)
            assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:200]
        assert _head(server) == before


def _stream_survives(server: Server, request: bytes, then: bytes) -> bytes:
    """Open a live event stream with `request`, send `then` on its connection, stop a
    session: what the stream carried until that session's stop arrived."""
    with httpx.Client(base_url=server.base_url, timeout=BOUND) as client:
        sid = client.post("/api/sessions", json={}).json()["session_id"]
        sock = _connect(server)
        sock.sendall(request)
        received = sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200 "), received[:200]
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(then)
        assert client.delete(f"/api/sessions/{sid}").status_code == 200  # an event to stream
        while b"session_stopped" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the stream ended: {received[-300:]!r}"
            received += chunk
        sock.close()
        return received


def test_a_refused_next_head_never_cuts_a_response_in_flight(server: Server) -> None:
    """An oversized head pipelined behind a live event stream: the stream goes on (no
    431 written into it), and the connection reads nothing more."""
    received = _stream_survives(
        server,
        b"GET /api/events?types=* HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        _post_with_head_of(4 * MAX_HEAD_BYTES)[: 2 * MAX_HEAD_BYTES],
    )
    assert b" 431 " not in received and b" 400 " not in received, received[-300:]


@pytest.mark.skipif(not HTTPTOOLS, reason="httptools is not installed")
def test_bytes_after_a_closing_request_are_not_taken_for_a_head(
    db_url: str, tmp_path: Path
) -> None:
    """After `Connection: close` httptools ignores what follows (uvicorn's leniency): no
    cap may answer it in the middle of that request's response. (h11 ends the
    connection on such bytes, its own rule.)"""
    with running_server(db_url, tmp_path, [*FAST, "--http", "httptools"]) as server:
        received = _stream_survives(
            server,
            b"GET /api/events?types=* HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            b"x" * (2 * MAX_HEAD_BYTES),
        )
    assert b" 431 " not in received and b" 400 " not in received, received[-300:]


def test_the_rest_of_an_answered_request_must_arrive_in_time(server: Server) -> None:
    """A body dripped after an early answer restarts uvicorn's keep-alive timer on every
    byte; the head deadline closes the connection instead."""
    sock = _connect(server)
    sock.sendall(
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sock.settimeout(0.2)
    received, started = b"", time.monotonic()
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        while time.monotonic() - started < BOUND:
            sock.sendall(b"1\r\nx\r\n")
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            received += chunk
    closed_after = time.monotonic() - started
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    assert closed_after < BOUND, "still open: the dripped body kept it"


@pytest.mark.skipif(not HTTPTOOLS, reason="httptools is not installed")
def test_a_whole_head_over_the_cap_is_refused_on_httptools(db_url: str, tmp_path: Path) -> None:
    """A complete head over the cap arriving in one read is measured and refused before
    the app runs (h11 measures only heads still incomplete, as uvicorn configures it)."""
    with running_server(db_url, tmp_path, [*FAST, "--http", "httptools"]) as server:
        before = _head(server)
        for size in (MAX_HEAD_BYTES + 1024, 3 * MAX_HEAD_BYTES):
            sock = _connect(server)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                sock.sendall(_post_with_head_of(size))
            answer = _refused(sock)
            assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:200]
        assert _head(server) == before
        assert httpx.get(f"{server.base_url}/api/health").status_code == 200


def test_a_head_under_the_cap_is_served(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(_post_with_head_of(MAX_HEAD_BYTES - 1024))
    first = _read_response(sock)
    sock.close()
    assert first.startswith(b"HTTP/1.1 201 "), first[:200]


def test_the_head_deadline_applies_again_on_a_kept_alive_connection(server: Server) -> None:
    """After one request, half of a second head is not enough to keep the connection."""
    sock = _connect(server)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = _read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 ")
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127")  # half a head, then nothing
    assert _read_until_closed(sock) == b""
    sock.close()


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (Content-Length framed) from a kept-alive connection."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, "closed before a response head"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body
