"""POST /api/sessions/{session_id}/events: a runtime appends its own events to a session.

The events land in the session's stream in hivelog's envelope (projections/envelope.py),
so history, SSE and the projections see them exactly as they see hivelog's own.
Idempotency is the store's: client `id`s become event ids, so re-sending a batch
at the same place is answered with the original result and appends nothing.
Lifecycle and trigger types are refused: only commands may decide those.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.http.body import RequestError
from api.http.contract import Body, documented, read_model
from api.http.responses import JSONResponse
from api.http.routing import path_session_id, sessions_of
from eventstore import (
    ANY,
    DuplicateEventId,
    InvalidEvent,
    NewEvent,
    StreamDeleted,
    WrongExpectedVersion,
)
from projections.envelope import iso_utc, new_event, parse_iso
from projections.errors import Conflict, Invalid, session_not_found
from projections.reserved import is_command_only

MAX_EVENTS_PER_REQUEST = 1000
# hivelog's derived event ids (a timer slot's fire, a webhook delivery, missed slots) are
# version-5 UUIDs anyone can compute: a producer taking one beforehand made the real
# fire a "duplicate", so it never happened. That text form is theirs alone.
DERIVED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

OptionalText = Annotated[str, msgspec.Meta(max_length=256)] | None


class ProducedEvent(Body):
    """One event in hive's envelope; `id` makes a retry idempotent."""

    type: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    stream_id: OptionalText = None
    node_id: OptionalText = None
    execution_id: OptionalText = None
    run_id: OptionalText = None
    correlation_id: OptionalText = None
    colony_id: OptionalText = None
    timestamp: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class AppendEvents(Body):
    """POST /api/sessions/{id}/events."""

    events: Annotated[
        list[ProducedEvent], msgspec.Meta(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)
    ]
    expected_version: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Appended(msgspec.Struct):
    session_id: str
    first_version: int
    last_version: int
    last_position: int
    count: int


def _timestamp(text: str, i: int) -> float:
    """Epoch seconds of `events[i].timestamp`, one the envelope can write back as ISO.

    An offset can move year 1 or 9999 out of datetime's range (parse_iso raised) or
    land past 9999-12-31 in UTC (iso_utc raised): both were a 500, not a 400.
    """
    try:
        stamp = parse_iso(text)
        if stamp is not None:
            iso_utc(stamp)
    except (ValueError, OverflowError, OSError):
        stamp = None
    if stamp is None:
        raise Invalid(f"'events[{i}].timestamp' must be an ISO-8601 time in years 1-9999 (UTC)")
    return stamp


def to_new_events(body: AppendEvents, now: float) -> list[NewEvent]:
    """The body as store events in hivelog's envelope; 400 naming the first bad field."""
    events: list[NewEvent] = []
    for i, event in enumerate(body.events):
        if not event.type.strip():
            raise Invalid(f"'events[{i}].type' must be a non-empty string")
        for name, value in (("type", event.type), ("id", event.id)):
            # Both are text columns, and PostgreSQL's text cannot hold NUL (a 500 there).
            if value is not None and "\x00" in value:
                raise Invalid(f"'events[{i}].{name}' must not contain NUL characters")
        if event.id is not None and DERIVED_ID.fullmatch(event.id):
            raise Invalid(
                f"'events[{i}].id': lowercase version-5 UUIDs are reserved for the ids "
                "hivelog derives (trigger fires, webhook deliveries); use another form"
            )
        if is_command_only(event.type):
            raise Invalid(
                f"'events[{i}].type': {event.type!r} is written only by hivelog's own "
                "commands and cannot be appended"
            )
        stamp = now if event.timestamp is None else _timestamp(event.timestamp, i)
        events.append(
            new_event(
                event.type,
                event.data,
                timestamp=stamp,
                stream_id=event.stream_id or "queen",
                colony_id=event.colony_id,
                event_id=event.id,
                node_id=event.node_id,
                execution_id=event.execution_id,
                correlation_id=event.correlation_id,
                run_id=event.run_id,
            )
        )
    return events


@documented(
    "Append a runtime's events to a session's stream (idempotent by event id)",
    body=AppendEvents,
    status=201,
    also=(200,),
    response=Appended,
    errors=(400, 404, 409, 413, 415),
)
async def append_events(request: Request) -> Response:
    """201 on a new append; 200 with the same body when it is a retry of one."""
    session_id = path_session_id(request)
    body = await read_model(request, AppendEvents)
    service = sessions_of(request)
    if service.is_deleted(session_id) or service.get(session_id) is None:
        raise session_not_found(session_id)
    events = to_new_events(body, time.time())
    store = service.store
    expected = ANY if body.expected_version is None else body.expected_version
    try:
        result = await store.append(session_id, events, expected=expected)
    except WrongExpectedVersion as exc:
        raise Conflict(
            f"Session '{session_id}' is at version {exc.actual}, "
            f"not the expected {body.expected_version}",
            current_version=exc.actual,
        ) from None
    except DuplicateEventId as exc:
        raise Conflict(f"Event id '{exc.event_id}' is already used: {exc}") from None
    except StreamDeleted:
        raise session_not_found(session_id) from None
    except InvalidEvent as exc:
        status = 413 if "bytes; the limit is" in str(exc) else 400
        raise RequestError(status, str(exc)) from None
    await service.wait_for(result.last_position)
    # The store says whether this call wrote (a retry, even one sent at the same moment as
    # the first, is answered with the original result and written=False).
    retried = not result.written
    payload = Appended(
        session_id, result.first_version, result.last_version, result.last_position, len(events)
    )
    return JSONResponse(msgspec.to_builtins(payload), status_code=200 if retried else 201)


routes = [Route("/api/sessions/{session_id}/events", append_events, methods=["POST"])]
