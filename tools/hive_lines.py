"""Turning one line of hive's events.jsonl into our stored envelope (pure).

hive wrote `AgentEvent.to_dict()` per line with a naive local timestamp and no
event id (contract §2.1). Here a line becomes the same envelope, keys in hive's
order, absent ids as null, with the timestamp in UTC; the original timestamp
and the line's origin go to the event's metadata. Event ids are uuid5 of the
source file (relative to HIVE_HOME) and line number, so importing twice finds
the same ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson

from eventstore import MAX_EVENT_BYTES, NewEvent
from projections.envelope import ENVELOPE_KEYS
from projections.trigger_config import ConfigError, validate_config
from projections.triggers import clean_config

IMPORT_NAMESPACE: Final = uuid.UUID("5b0e6f9e-3c59-4d0c-9a57-8f2f4b3c7e11")
MAX_TYPE_CHARS = 256
TRIGGER_DEFINITIONS = frozenset({"trigger_available", "trigger_activated", "trigger_updated"})


class LineError(ValueError):
    """Why a line cannot be imported (reported with its file and line, then skipped)."""


@dataclass(frozen=True, slots=True)
class Origin:
    source: str  # the file, relative to HIVE_HOME, with forward slashes
    line: int  # 1-based


_NAMESPACE_SHA1 = hashlib.sha1(IMPORT_NAMESPACE.bytes, usedforsecurity=False)
# the RFC 4122 variant bits set on a UUID's 17th hex digit: (digit & 0b0011) | 0b1000
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def line_event_id(origin: Origin) -> str:
    """`uuid5(IMPORT_NAMESPACE, "source:line")`, computed without building UUID objects.

    Called for every line of every import (also the lines already imported), where
    `uuid.uuid5` cost more than parsing the line.
    """
    return LineIds(origin.source)(origin.line)


class LineIds:
    """`line_event_id` for the lines of one file: the namespace and `source:` are hashed
    once per file, each line adds only its number."""

    __slots__ = ("_base",)

    def __init__(self, source: str) -> None:
        self._base = _NAMESPACE_SHA1.copy()
        self._base.update(f"{source}:".encode())

    def __call__(self, line: int) -> str:
        digest = self._base.copy()
        digest.update(b"%d" % line)
        h = digest.hexdigest()
        # version 5 in the 13th hex digit, the variant in the 17th
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def utc_timestamp(value: object, tz: dt.tzinfo | None) -> tuple[str, str | None]:
    """(ISO-8601 UTC, the original text if it was changed). Naive values are in `tz`.

    `tz=None` means the importing machine's local zone, where hive wrote them.
    """
    if not isinstance(value, str) or not value:
        raise LineError("no timestamp")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise LineError(f"timestamp {value!r} is not ISO-8601") from None
    try:
        return _in_utc(moment, value, tz)
    except (OverflowError, ValueError):  # year 1 or 9999 moved out of the calendar
        raise LineError(f"timestamp {value!r} is out of range in UTC") from None


def _in_utc(moment: dt.datetime, value: str, tz: dt.tzinfo | None) -> tuple[str, str | None]:
    """`utc_timestamp` of a parsed moment; raises OverflowError (or ValueError) when
    the shift to UTC leaves the years datetime can hold."""
    if moment.tzinfo is None:
        if tz is not None and (offset := _hour_offset(moment, tz)) is not None:
            # what astimezone(UTC) computes (moment - utcoffset), without the zone look-up
            return (moment - offset).isoformat() + "+00:00", value
        moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    elif moment.utcoffset() == dt.timedelta(0):
        return value, None  # already UTC: kept byte for byte
    return moment.astimezone(dt.UTC).isoformat(), value


_OFFSETS: dict[tuple[dt.tzinfo, int, int, int, int], dt.timedelta | None] = {}
MAX_REMEMBERED_HOURS = 1 << 16


def _hour_offset(moment: dt.datetime, tz: dt.tzinfo) -> dt.timedelta | None:
    """The UTC offset `tz` gives every naive time in `moment`'s hour (fold 0, as
    `replace(tzinfo=tz)`), or None if it is not the same at the hour's first and last
    microsecond (a transition inside the hour, as Lord Howe's 30-minute shift). Looked up
    once per hour: a zone look-up per line cost a third of parsing it."""
    key = (tz, moment.year, moment.month, moment.day, moment.hour)
    try:
        return _OFFSETS[key]
    except KeyError:
        pass
    first = moment.replace(minute=0, second=0, microsecond=0, tzinfo=tz, fold=0)
    last = first.replace(minute=59, second=59, microsecond=999_999)
    offset = first.utcoffset()
    found = offset if offset is not None and offset == last.utcoffset() else None
    if len(_OFFSETS) >= MAX_REMEMBERED_HOURS:
        _OFFSETS.clear()
    _OFFSETS[key] = found
    return found


def envelope_from_line(raw: bytes, tz: dt.tzinfo | None) -> tuple[dict[str, Any], str | None]:
    """hive's line -> (our envelope, original timestamp if converted). Raises LineError."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise LineError("not a JSON object")
    event_type = value.get("type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise LineError("no event type")
    if len(event_type) > MAX_TYPE_CHARS:
        raise LineError("event type longer than 256 characters")
    data = value.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LineError("data is not an object")
    if event_type in TRIGGER_DEFINITIONS and isinstance(data.get("trigger_config"), dict):
        kind = data.get("trigger_type")
        problem = trigger_problem(kind if isinstance(kind, str) else "", data["trigger_config"])
        if problem is not None:
            raise LineError(f"trigger {str(data.get('trigger_id'))[:128]!r}: {problem}")
    timestamp, original = utc_timestamp(value.get("timestamp"), tz)
    # our keys in our order (absent ones null), then keys hive added later, in its order
    body: dict[str, Any] = dict.fromkeys(ENVELOPE_KEYS)
    body.update(value)
    body.update(data=data, timestamp=timestamp)
    if body["stream_id"] is None:
        body["stream_id"] = "queen"
    return body, original


_TRIGGER_PROBLEMS: dict[tuple[str, bytes], str | None] = {}
MAX_REMEMBERED_CONFIGS = 4096


def trigger_problem(kind: str, config: dict[str, Any]) -> str | None:
    """Why a trigger definition's config is refused (the one trigger_config validator, as
    for PATCH and colony load), or None. The validator is pure (cron is checked from a
    fixed date), so its verdict is remembered per (kind, config as JSON, keys in order):
    a session repeats the same definitions, and a cron check costs more than a line."""
    cleaned = clean_config(config)
    try:
        key: tuple[str, bytes] | None = (kind, orjson.dumps(cleaned))
    except TypeError:  # not re-encodable (the validator says why)
        key = None
    if key is not None and key in _TRIGGER_PROBLEMS:
        return _TRIGGER_PROBLEMS[key]
    try:
        validate_config(kind, cleaned)
        problem = None
    except ConfigError as exc:
        problem = exc.message
    if key is not None and len(_TRIGGER_PROBLEMS) < MAX_REMEMBERED_CONFIGS:
        _TRIGGER_PROBLEMS[key] = problem
    return problem


def event_from_line(
    raw: bytes, origin: Origin, tz: dt.tzinfo | None, event_id: str | None = None
) -> NewEvent:
    """A NewEvent for one line, ready to append; raises LineError."""
    event_id, event_type, data, metadata = event_row(raw, origin, tz, event_id)
    return NewEvent(event_type, data, metadata, event_id=event_id)


def event_row(
    raw: bytes, origin: Origin, tz: dt.tzinfo | None, event_id: str | None = None
) -> tuple[str, str, bytes, bytes]:
    """(event id, type, data, metadata) of one line, as `event_from_line` builds them
    (a tuple: what the parsing process sends); raises LineError."""
    body, original = envelope_from_line(raw, tz)
    try:
        data = orjson.dumps(body)
    except TypeError as exc:  # nested deeper than the encoder allows (254 levels)
        raise LineError(f"cannot be stored as JSON ({exc})") from None
    metadata = import_metadata(origin, original)
    if len(data) + len(metadata) > MAX_EVENT_BYTES:
        raise LineError(f"event of {len(data)} bytes is over the store's 1 MiB limit")
    return event_id or line_event_id(origin), body["type"], data, metadata


def import_metadata(origin: Origin, original: str | None) -> bytes:
    """`orjson.dumps({"hive_import": {"source", "line"[, "original_timestamp"]}})`, byte
    for byte, from a template (one per line of every import)."""
    head = _prefix(origin.source) + b"%d" % origin.line
    if original is None:
        return head + b"}}"
    return head + b',"original_timestamp":%b}}' % orjson.dumps(original)


_PREFIXES: dict[str, bytes] = {}


def _prefix(source: str) -> bytes:
    """`{"hive_import":{"source":<source>,"line":`, remembered (a file's lines share it)."""
    prefix = _PREFIXES.get(source)
    if prefix is None:
        if len(_PREFIXES) > MAX_REMEMBERED_CONFIGS:
            _PREFIXES.clear()
        prefix = _PREFIXES[source] = b'{"hive_import":{"source":%b,"line":' % orjson.dumps(source)
    return prefix
