"""The tamper-evident hash chain over the global log (definition: docs/chain.md).

Every event gets a content digest and a link hash:

    u64(n)     = n as 8 bytes, big-endian two's complement (PostgreSQL's int8send)
    lp(b)      = u64(len(b)) || b
    digest     = SHA-256( lp(data) || (0x00 if metadata is null else 0x01 || lp(metadata)) )
    link(prev) = SHA-256( "hivelog-chain-v1" || prev || u64(position) || lp(utf8(stream_id))
                          || u64(version) || lp(utf8(event_id)) || lp(utf8(type))
                          || u64(recorded_at_us) || digest )

`data`/`metadata` are the stored JSON bytes, exactly. `prev` is the link of the
previous event in position order (32 zero bytes before the first). The PostgreSQL
functions in pg_schema.py compute the same bytes; the audit recomputes both in
Python. Pure functions only: the backends call them inside the append's transaction.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

DOMAIN: Final = b"hivelog-chain-v1"
GENESIS: Final = bytes(32)
_U64 = struct.Struct(">q")


def _lp(raw: bytes) -> bytes:
    return _U64.pack(len(raw)) + raw


def content_digest(data: bytes, metadata: bytes | None) -> bytes:
    """SHA-256 of the stored payload and metadata bytes, length-prefixed."""
    tail = b"\x00" if metadata is None else b"\x01" + _lp(metadata)
    return hashlib.sha256(_lp(data) + tail).digest()


def link(
    prev: bytes,
    position: int,
    stream_id: str,
    version: int,
    event_id: str,
    type_: str,
    recorded_at_us: int,
    digest: bytes,
) -> bytes:
    """The chain hash of one event, given the previous event's."""
    return hashlib.sha256(
        b"".join(
            (
                DOMAIN,
                prev,
                _U64.pack(position),
                _lp(stream_id.encode()),
                _U64.pack(version),
                _lp(event_id.encode()),
                _lp(type_.encode()),
                _U64.pack(recorded_at_us),
                digest,
            )
        )
    ).digest()
