"""One line per event for people: when, where in the log, what type, the key fields.

Pure: takes a RecordedEvent, returns text. The time shown is the event's own
envelope timestamp when it has one (an imported event keeps hive's time), else
the commit time.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from eventstore import RecordedEvent

from .logio import iso_us

MAX_VALUE_CHARS = 60
MAX_FIELDS_CHARS = 160
# Fields worth seeing first when a payload has them; the rest follow in payload order.
PREFERRED = (
    "trigger_id",
    "phase",
    "queen_id",
    "colony_id",
    "colony_name",
    "tool_name",
    "name",
    "task",
    "error",
    "reason",
    "content",
)
# What a terminal acts on instead of showing: C0 and C1 controls (escape sequences can
# retitle, clear or recolour the operator's terminal) and the bidi overrides (which
# reorder what is shown). Any producer can put them in a payload; shown escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every character a terminal would act on shown as an escape."""
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def human_line(event: RecordedEvent) -> str:
    envelope = _decode(event.data_json)
    when = iso_us(event.recorded_at_us)
    inner: Any = envelope
    source = ""
    if isinstance(envelope, dict) and "data" in envelope and "type" in envelope:
        stamp = envelope.get("timestamp")
        if isinstance(stamp, str) and stamp:
            when = stamp
        inner = envelope.get("data")
        origin = envelope.get("stream_id")
        if isinstance(origin, str) and origin != "queen":
            source = f" [{origin}]"
    line = f"{when}  #{event.position} v{event.version}  {event.type}{source}  {key_fields(inner)}"
    return printable(line)


def key_fields(payload: Any) -> str:
    """`k=v` for the scalar fields of a payload, preferred keys first, shortened."""
    if not isinstance(payload, dict):
        return "" if payload is None else _short(payload)
    keys = [k for k in PREFERRED if k in payload]
    keys += [k for k in payload if k not in keys]
    parts: list[str] = []
    for key in keys:
        value = payload[key]
        if isinstance(value, (dict, list)):
            continue
        parts.append(f"{key}={_short(value)}")
    text = " ".join(parts)
    if len(text) > MAX_FIELDS_CHARS:
        text = text[: MAX_FIELDS_CHARS - 1] + "…"
    return text


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = " ".join(text.split())
    if isinstance(value, str):
        text = repr(text) if (" " in text or not text) else text
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _decode(data_json: bytes) -> Any:
    try:
        return orjson.loads(data_json)
    except orjson.JSONDecodeError:
        return None
