"""Slow and silent clients against a real `hivelog serve`: heads and bodies that never
complete, idle connections, and clients that leave mid-request.

The server runs with 1 s timeouts so the test is quick; every socket read has a
generous bound (a hang detector, not a timing assertion).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, running_server

FAST = ["--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1"]
BOUND = 20.0  # seconds: far beyond the 1 s timeouts; only a hang reaches it


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_server(db_url, tmp_path, FAST) as s:
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
