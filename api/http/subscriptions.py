"""Durable consumer groups over HTTP (`/api/subscriptions`), as KurrentDB's persistent
subscriptions: competing workers claim, ack and nack; unacked work comes back after
the ack timeout; what keeps failing is parked and can be replayed.

Every answer is given after the store committed the change, so an ack answered
200 is durable. The rules and the long poll live in api/core/subscriptions.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.subscriptions import MAX_WAIT_SECONDS, GroupView, SubscriptionService
from api.http.body import RequestError
from api.http.contract import Body, documented, read_model
from api.http.eventjson import event_json
from api.http.responses import JSONResponse
from api.http.state import parts
from eventstore.subscriptions import GROUP_NAME, Delivery, GroupSettings
from eventstore.types import MAX_INT64
from projections.errors import Invalid

PREFIX = "/api/subscriptions"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class PutGroup(Body):
    """PUT /api/subscriptions/{group}: create (201) or update (200)."""

    types: Annotated[list[Name], msgspec.Meta(max_length=100)] | None = None
    sessions: Annotated[list[Name], msgspec.Meta(max_length=1000)] | None = None
    start: int | str = msgspec.field(default="start", name="from")
    ack_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 30.0
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 5
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    ordering: Literal["session", "none"] = "session"


class Claim(Body):
    worker: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    max: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT_SECONDS)] = 0.0


DeliveryIds = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(min_length=1, max_length=10_000)
]


class Ack(Body):
    delivery_ids: DeliveryIds


class Nack(Body):
    delivery_ids: DeliveryIds
    action: Literal["retry", "park", "skip"] = "retry"
    reason: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    delay_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0.0


class SubscriptionGroup(msgspec.Struct):
    """A group's settings with its checkpoint, the log head, lag and counts."""

    group: str
    types: list[str] | None
    sessions: list[str] | None
    ack_timeout_seconds: float
    max_retries: int
    max_in_flight: int
    ordering: str
    checkpoint: int
    head: int
    lag: int
    in_flight: int
    ready: int
    parked: int


class SubscriptionGroups(msgspec.Struct):
    groups: list[SubscriptionGroup]


class ClaimedMessage(msgspec.Struct):
    delivery_id: str
    attempt: int
    event: dict[str, Any]


class ClaimedMessages(msgspec.Struct):
    messages: list[ClaimedMessage]


class ParkedItem(msgspec.Struct):
    position: int
    attempts: int
    reason: str
    event: dict[str, Any] | None


class ParkedMessages(msgspec.Struct):
    messages: list[ParkedItem]


class AckResult(msgspec.Struct):
    acked: int
    unknown: list[str]


class NackResult(msgspec.Struct):
    nacked: int
    unknown: list[str]


class GroupDeleted(msgspec.Struct):
    deleted: str


class Replayed(msgspec.Struct):
    replayed: int


def _group_name(request: Request) -> str:
    name = str(request.path_params["group"])
    if not GROUP_NAME.fullmatch(name):
        raise RequestError(400, f"Invalid group name '{name[:200]}'")
    return name


def _service(request: Request) -> SubscriptionService:
    return parts(request).subscriptions


def _start_after(value: int | str) -> int | None:
    if isinstance(value, int):
        if not 0 <= value <= MAX_INT64:  # past int64 the store's column overflowed: a 500
            raise Invalid('\'from\' must be "start", "end" or a position in 0..2**63-1')
        return value
    if value == "start":
        return 0
    if value == "end":
        return None
    raise Invalid('\'from\' must be "start", "end" or a position >= 0')


def _no_nul(field: str, values: list[str] | None) -> None:
    """PostgreSQL's text cannot hold NUL: stored in a group's filter it made every
    claim a 500; in a worker name or a nack reason, that request a 500."""
    if any("\x00" in value for value in values or ()):
        raise Invalid(f"'{field}' must not contain NUL characters")


def view_dict(view: GroupView) -> dict[str, object]:
    g, s = view.group, view.group.settings
    return {
        "group": g.name,
        "types": None if s.types is None else list(s.types),
        "sessions": None if s.sessions is None else list(s.sessions),
        "ack_timeout_seconds": s.ack_timeout_seconds,
        "max_retries": s.max_retries,
        "max_in_flight": s.max_in_flight,
        "ordering": s.ordering,
        "checkpoint": g.checkpoint,
        "head": view.head,
        "lag": view.lag,
        "in_flight": g.in_flight,
        "ready": g.ready,
        "parked": g.parked,
    }


@documented(
    "Create or update a consumer group",
    body=PutGroup,
    body_required=False,
    status=201,
    also=(200,),
    response=SubscriptionGroup,
    errors=(400, 413, 415),
)
async def put_group(request: Request) -> Response:
    name = _group_name(request)
    body = await read_model(request, PutGroup, optional=True)
    start_after = _start_after(body.start)
    _no_nul("types", body.types)
    _no_nul("sessions", body.sessions)
    settings = GroupSettings(
        types=None if body.types is None else tuple(dict.fromkeys(body.types)),
        sessions=None if body.sessions is None else tuple(dict.fromkeys(body.sessions)),
        ack_timeout_seconds=body.ack_timeout_seconds,
        max_retries=body.max_retries,
        max_in_flight=body.max_in_flight,
        ordering=body.ordering,
    )
    service = _service(request)
    created = await service.put(name, settings, start_after)
    view = await service.view(name)
    return JSONResponse(view_dict(view), status_code=201 if created else 200)


@documented("Every consumer group, with checkpoint, lag and counts", response=SubscriptionGroups)
async def list_groups(request: Request) -> Response:
    views = await _service(request).views()
    return JSONResponse({"groups": [view_dict(v) for v in views]})


@documented(
    "One consumer group: settings, checkpoint, head, lag, counts",
    response=SubscriptionGroup,
    errors=(400, 404),
)
async def get_group(request: Request) -> Response:
    return JSONResponse(view_dict(await _service(request).view(_group_name(request))))


@documented("Delete a consumer group and its deliveries", response=GroupDeleted, errors=(400, 404))
async def delete_group(request: Request) -> Response:
    name = _group_name(request)
    await _service(request).delete(name)
    return JSONResponse({"deleted": name})


def _messages(deliveries: list[Delivery]) -> bytes:
    items = [
        b'{"delivery_id":%b,"attempt":%d,"event":%b}'
        % (
            orjson.dumps(d.delivery_id),
            d.attempt,
            event_json(d.event, session_id=d.event.stream_id),
        )
        for d in deliveries
    ]
    return b'{"messages":[' + b",".join(items) + b"]}"


@documented(
    "Claim up to `max` messages, long-polling up to `wait_seconds`",
    body=Claim,
    response=ClaimedMessages,
    errors=(400, 404, 413, 415),
)
async def claim(request: Request) -> Response:
    name = _group_name(request)
    body = await read_model(request, Claim)
    _no_nul("worker", [body.worker])
    got = await _service(request).claim(name, body.worker, body.max, body.wait_seconds)
    return Response(_messages(got), media_type="application/json")


@documented(
    "Acknowledge deliveries (durable once answered)",
    body=Ack,
    response=AckResult,
    errors=(400, 404, 413),
)
async def ack(request: Request) -> Response:
    name = _group_name(request)
    body = await read_model(request, Ack)
    acked, unknown = await _service(request).ack(name, body.delivery_ids)
    return JSONResponse({"acked": acked, "unknown": unknown})


@documented(
    "Retry, park or skip deliveries", body=Nack, response=NackResult, errors=(400, 404, 413)
)
async def nack(request: Request) -> Response:
    name = _group_name(request)
    body = await read_model(request, Nack)
    _no_nul("reason", [body.reason])
    done, unknown = await _service(request).nack(
        name, body.delivery_ids, body.action, body.reason, body.delay_seconds
    )
    return JSONResponse({"nacked": done, "unknown": unknown})


PARKED_MAX = 1000


@documented(
    "Parked messages, oldest first",
    response=ParkedMessages,
    errors=(400, 404),
    query={
        "limit": Annotated[
            int, msgspec.Meta(ge=1, le=PARKED_MAX, description="messages, default 100")
        ]
    },
)
async def parked(request: Request) -> Response:
    name = _group_name(request)
    text = request.query_params.get("limit", "100")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= PARKED_MAX:  # '²'
        raise RequestError(400, f"'limit' must be an integer in [1, {PARKED_MAX}]")
    found = await _service(request).parked(name, int(text))
    items = [
        b'{"position":%d,"attempts":%d,"reason":%b,"event":%b}'
        % (
            m.position,
            m.attempts,
            orjson.dumps(m.reason),
            b"null" if m.event is None else event_json(m.event, session_id=m.event.stream_id),
        )
        for m in found
    ]
    return Response(b'{"messages":[' + b",".join(items) + b"]}", media_type="application/json")


@documented("Put every parked message back for delivery", response=Replayed, errors=(400, 404))
async def replay(request: Request) -> Response:
    count = await _service(request).replay(_group_name(request))
    return JSONResponse({"replayed": count})


routes = [
    Route(PREFIX, list_groups, methods=["GET"]),
    Route(PREFIX + "/{group}", put_group, methods=["PUT"]),
    Route(PREFIX + "/{group}", get_group, methods=["GET"]),
    Route(PREFIX + "/{group}", delete_group, methods=["DELETE"]),
    Route(PREFIX + "/{group}/claim", claim, methods=["POST"]),
    Route(PREFIX + "/{group}/ack", ack, methods=["POST"]),
    Route(PREFIX + "/{group}/nack", nack, methods=["POST"]),
    Route(PREFIX + "/{group}/parked", parked, methods=["GET"]),
    Route(PREFIX + "/{group}/parked/replay", replay, methods=["POST"]),
]
