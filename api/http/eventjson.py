"""Event JSON for responses: the stored envelope bytes with the event's place spliced in.

A stored session event's data is hive's whole envelope object, encoded once by
orjson at append time. Responses put `"position":P,"version":V,` in front of the
stored object's first key and `,"seq":V` after its last, as bytes: no decode and
re-encode per event, so a 2000-event history page costs one join, not 2000 JSON
round trips. `seq` is hive 54fd8db's per-event number (history rewrites it to the
line index, RS:2147); here it is the stream version everywhere (history, SSE,
`snapshot_seq`), so a client's `timestamp|seq` dedup keys agree. A stored
envelope that has its own top-level `seq` (imported from hive) is re-encoded
without it, so the key appears once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import orjson


class StoredEvent(Protocol):
    """What both `RecordedEvent` and the lean `JsonRow` offer."""

    @property
    def position(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def data_json(self) -> bytes: ...


def _single_line_object(raw: bytes) -> bytes | None:
    """`raw` when it is a one-line JSON object as orjson writes it, else None."""
    if raw[:1] == b"{" and raw[-1:] == b"}" and b"\n" not in raw and b"\r" not in raw:
        return raw
    return None


def event_json(event: StoredEvent, *, session_id: str | None = None) -> bytes:
    """One event as a JSON object: position, version (and session id) first, then the envelope.

    Stored bytes that are not a single-line object (written as raw bytes by some
    other tool) are re-encoded once, so the output is always one line of JSON, safe
    in an SSE `data:` field; a non-object payload is wrapped as `{type, data}`.
    """
    head = b'{"position":%d,"version":%d,' % (event.position, event.version)
    if session_id is not None:
        head += b'"session_id":' + orjson.dumps(session_id) + b","
    raw = event.data_json
    body = _single_line_object(raw)
    if body is None or b'"seq"' in body:
        value = orjson.loads(raw)
        if not isinstance(value, dict):
            value = {"type": event.type, "data": value}
        value.pop("seq", None)
        body = orjson.dumps(value)
    rest = body[1:]
    if rest.lstrip()[:1] == b"}":  # an empty object: no comma after the head
        return head + b'"seq":%d}' % event.version
    return head + rest[:-1] + b',"seq":%d}' % event.version


def events_array(events: Iterable[StoredEvent], prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """`prefix` + a JSON array of events (each spliced as `event_json` does) + `suffix`.

    The common case (every payload an orjson-written object, as the store writes
    them) is one list comprehension and one join into a single allocation, about
    0.5 us per event; anything else takes the careful per-event path.
    """
    rows = list(events)
    if all(
        e.data_json.startswith(b'{"') and e.data_json.endswith(b"}") and b'"seq"' not in e.data_json
        for e in rows
    ):
        parts = [
            b'{"position":%d,"version":%d,%b,"seq":%d},'
            % (e.position, e.version, e.data_json[1:-1], e.version)
            for e in rows
        ]
        if parts:
            parts[-1] = parts[-1][:-1]  # no comma after the last event
        body = b"".join([prefix, b"[", *parts, b"]", suffix])
        if b"\n" not in body and b"\r" not in body:
            return body
    return prefix + b"[" + b",".join(map(event_json, rows)) + b"]" + suffix
