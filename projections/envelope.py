"""hive's event envelope: how every session event is stored and read back.

A stored session event's `data` is hive's whole AgentEvent object (§2.1 of the
contract), so history and SSE can pass the stored bytes to a hive client as they
are. Timestamps are ISO-8601 UTC (hive wrote naive local time), and folds read
time from the envelope, never from the clock, so a replay gives the same state.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

from eventstore import NewEvent, RecordedEvent

ENVELOPE_KEYS = (
    "type",
    "stream_id",
    "node_id",
    "execution_id",
    "data",
    "timestamp",
    "correlation_id",
    "colony_id",
    "run_id",
)


def iso_utc(epoch_seconds: float) -> str:
    """ISO-8601 with an explicit UTC offset, microsecond precision."""
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).isoformat()


def parse_iso(text: object) -> float | None:
    """Epoch seconds from an ISO-8601 string; naive values (hive's) are taken as UTC."""
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def envelope(
    type: str,
    data: dict[str, Any],
    *,
    timestamp: float,
    stream_id: str = "queen",
    node_id: str | None = None,
    execution_id: str | None = None,
    correlation_id: str | None = None,
    colony_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """hive's AgentEvent.to_dict(), key order kept; `run_id` always present (null when unset)."""
    return {
        "type": type,
        "stream_id": stream_id,
        "node_id": node_id,
        "execution_id": execution_id,
        "data": data,
        "timestamp": iso_utc(timestamp),
        "correlation_id": correlation_id,
        "colony_id": colony_id,
        "run_id": run_id,
    }


def new_event(
    type: str,
    data: dict[str, Any],
    *,
    timestamp: float,
    stream_id: str = "queen",
    colony_id: str | None = None,
    event_id: str | uuid.UUID | None = None,
    node_id: str | None = None,
    execution_id: str | None = None,
    correlation_id: str | None = None,
    run_id: str | None = None,
) -> NewEvent:
    """A NewEvent whose type is hive's and whose data is the full envelope.

    `timestamp` (epoch seconds) is an argument, not read from the clock, so deciders
    stay pure: the caller passes "now" in the command.
    """
    body = envelope(
        type,
        data,
        timestamp=timestamp,
        stream_id=stream_id,
        node_id=node_id,
        execution_id=execution_id,
        correlation_id=correlation_id,
        colony_id=colony_id,
        run_id=run_id,
    )
    return NewEvent(type=type, data=body, event_id=event_id)


def decode(event: RecordedEvent) -> dict[str, Any]:
    """The stored envelope as a dict; a non-object payload reads as an empty envelope."""
    try:
        value = orjson.loads(event.data_json)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def payload(body: dict[str, Any]) -> dict[str, Any]:
    """The inner `data` of an envelope (an object, or `{}`)."""
    inner = body.get("data")
    return inner if isinstance(inner, dict) else {}


def event_time(body: dict[str, Any], event: RecordedEvent) -> float:
    """The envelope's timestamp, else the commit time (events written by other tools)."""
    parsed = parse_iso(body.get("timestamp"))
    return parsed if parsed is not None else event.recorded_at_us / 1_000_000
