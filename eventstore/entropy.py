"""Random bytes for ids, drawn from the OS 4 KiB at a time.

Every append without ids needs 10 random bytes per event, and every new session 4.
One `os.urandom` call per id was a system call on the event loop's thread, and each
system call lets the store's writer and reader threads take the interpreter lock:
the loop then waits for it back (measured on POST /api/sessions: ~20 µs per call
under load). The bytes are the same kind (the OS's CSPRNG), just fetched in bulk. A
forked child drops the parent's buffer, so two processes never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

CHUNK_BYTES = 4096

_lock = threading.Lock()
_buffer = b""
_offset = 0


def random_bytes(n: int) -> bytes:
    """`n` bytes (n <= CHUNK_BYTES) from the OS's CSPRNG, each byte handed out once."""
    global _buffer, _offset
    with _lock:
        end = _offset + n
        if end > len(_buffer):
            _buffer, _offset, end = os.urandom(CHUNK_BYTES), 0, n
        taken = _buffer[_offset:end]
        _offset = end
        return taken


def _forget() -> None:
    global _buffer, _offset
    _buffer, _offset = b"", 0


os.register_at_fork(after_in_child=_forget)
