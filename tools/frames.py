"""Frames on the pipes between a tool and its child process (import-hive's parser,
audit's catalogue fold): a 4-byte big-endian length, then that many bytes (a pickle);
an empty frame ends the input."""

from __future__ import annotations

import struct
from typing import IO

_LENGTH = struct.Struct(">I")
END = _LENGTH.pack(0)  # the empty frame: no more input


def frame(payload: bytes) -> bytes:
    """`payload` as one frame, ready to write."""
    return _LENGTH.pack(len(payload)) + payload


def read_frame(pipe: IO[bytes]) -> bytes | None:
    """One frame's payload; None at the end of the input: the empty frame, or the pipe
    closed (also part-way through a frame, when the writer is gone)."""
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    if size == 0:
        return None
    data = pipe.read(size)
    return data if len(data) == size else None
