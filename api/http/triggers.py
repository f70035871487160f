"""Trigger routes (hive's paths, codes and bodies).

hive's PATCH changed the task before validating the config; here every route
validates completely in a pure decider first, so a refused request appends
nothing. `GET /api/sessions/{id}/triggers` serves both contracts in one row:
hivelog's (`id`, `active`, timing at top level) and hive 54fd8db's (`trigger_id`,
`enabled` = running now, timing inside `trigger_config`, ISO `last_fired_at` /
`next_due_at` at top level). `POST …/triggers` is hive 54fd8db's create.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.clock import Clock
from api.core.service import SessionService
from api.http import shapes
from api.http.contract import Body, documented, read_model
from api.http.responses import JSONResponse
from api.http.state import parts
from eventstore import NewEvent
from projections import trigger_commands as tc
from projections import trigger_create as tcreate
from projections.commands import require_live
from projections.envelope import iso_utc
from projections.errors import Invalid, session_not_found
from projections.ids import is_valid_id
from projections.schedule import DEFAULT_GRACE_SECONDS, DEFAULT_MISFIRE, next_fire_fields
from projections.session import SessionState
from projections.trigger_config import MAX_TRIGGER_BYTES
from projections.triggers import TriggerState

log = logging.getLogger("hivelog.triggers")

Handler = Callable[[Request], Awaitable[Response]]


def clock_of(request: Request) -> Clock:
    return parts(request).clock


def service_of(request: Request) -> SessionService:
    return parts(request).sessions


def _ids(request: Request) -> tuple[str, str]:
    session_id = request.path_params["session_id"]
    trigger_id = request.path_params.get("trigger_id", "")
    if not is_valid_id(session_id):
        raise session_not_found(session_id)
    return session_id, trigger_id


def _iso_ms(ms: int | None) -> str | None:
    return iso_utc(ms / 1000) if ms is not None else None


def trigger_view(state: SessionState, trigger: TriggerState, now_ms: int) -> dict[str, Any]:
    """One trigger with its schedule; `next_fire_*` only while it will really fire.

    Both contracts' keys: `id`/`trigger_id`, `active` (stored flag) / `enabled`
    (running now: active in a live session), timing at top level and inside
    `trigger_config`. Top-level `last_fired_at` is hive 54fd8db's ISO string (the
    types clash; hive wins); the epoch-ms value is inside `trigger_config`.
    """
    config = trigger.trigger_config
    enabled = trigger.active and state.live
    timing = next_fire_fields(trigger, now_ms) if enabled else {}
    wire_config = dict(config)
    wire_config.update(timing)
    if trigger.fire_count or trigger.last_fired_at is not None:
        wire_config["fire_count"] = trigger.fire_count
        if trigger.last_fired_at is not None:
            wire_config["last_fired_at"] = trigger.last_fired_at
    view: dict[str, Any] = {
        "id": trigger.id,
        "trigger_id": trigger.id,
        "name": trigger.description or trigger.id,
        "trigger_type": trigger.trigger_type,
        "trigger_config": wire_config,
        "task": trigger.task,
        "active": trigger.active,
        "enabled": enabled,
        "next_fire_at": None,
        "next_fire_in": None,
        "next_due_at": _iso_ms(timing.get("next_fire_at")),
        "fire_count": trigger.fire_count,
        "last_fired_at": _iso_ms(trigger.last_fired_at),
        "last_scheduled_at": trigger.last_scheduled_at,
        "skipped_count": trigger.skipped_count,
        "missed_count": trigger.missed_count,
    }
    if trigger.trigger_type == "timer":
        view["timezone"] = config.get("timezone") or "UTC"
        view["misfire"] = config.get("misfire") or DEFAULT_MISFIRE
        view["misfire_grace_seconds"] = config.get("misfire_grace_seconds", DEFAULT_GRACE_SECONDS)
    if trigger.trigger_type == "webhook":
        view["webhook_count"] = trigger.webhook_count
    view.update(timing)  # the schedule computed above ({} unless it will really fire)
    return view


class CreateTriggerBody(Body):
    """POST /api/sessions/{id}/triggers (hive 54fd8db). Typed loosely on purpose: hive's
    checks and texts run in their order in `projections.trigger_create`."""

    name: Any = None
    task: Any = None
    trigger_type: Any = None
    trigger_config: Any = None


def _check_create_size(cmd: tcreate.CreateTrigger) -> None:
    """PATCH's bound for a new trigger (hive's own 400s first, in their order): every
    fire records the name and the task, so together with the config they may take at
    most MAX_TRIGGER_BYTES as JSON. A create took up to the 1 MiB body (a PATCH of
    that trigger's config was then refused for good, each fire wrote ~1 MiB), and a
    body just under 1 MiB made an event the store refuses."""
    name, task, config = tcreate.check_create(cmd)
    if len(orjson.dumps([name, task, config])) > MAX_TRIGGER_BYTES:
        raise Invalid(
            f"'name', 'task' and 'trigger_config' together may take at most "
            f"{MAX_TRIGGER_BYTES} bytes as JSON"
        )


@documented(
    "Create a timer schedule (hive 54fd8db): slugged id, started at once",
    body=CreateTriggerBody,
    errors=(400, 404, 413, 415),
)
async def create_trigger(request: Request) -> Response:
    """hive's order: the session (404), then the body (400s), then the id."""
    session_id, _ = _ids(request)
    service = service_of(request)
    await service.confirm(session_id, lambda state: require_live(state, session_id))
    body = await read_model(request, CreateTriggerBody)
    cmd = tcreate.CreateTrigger(
        name=body.name,
        task=body.task,
        trigger_type=body.trigger_type,
        trigger_config=body.trigger_config,
        now=clock_of(request).now(),
    )
    _check_create_size(cmd)
    created: dict[str, str] = {}

    def decide(state: SessionState | None) -> list[NewEvent]:
        trigger_id, events = tcreate.decide_create(state, session_id, cmd)
        created["id"] = trigger_id
        return events

    state = await service.execute(session_id, decide)
    trigger = state.triggers.get(created["id"])
    if trigger is None:  # removed meanwhile
        raise tc.trigger_not_found(created["id"])
    return JSONResponse(
        {
            "trigger_id": trigger.id,
            "name": trigger.description,
            "trigger_type": "timer",
            "trigger_config": trigger.trigger_config,
        }
    )


@documented(
    "The session's triggers (the authoritative projection)",
    response=shapes.Triggers,
    errors=(404,),
)
async def list_triggers(request: Request) -> Response:
    session_id, _ = _ids(request)
    state = service_of(request).get(session_id)
    if state is None:
        raise session_not_found(session_id)
    now_ms = clock_of(request).now_ms()
    views = [trigger_view(state, t, now_ms) for t in state.triggers.values()]
    return JSONResponse({"session_id": session_id, "live": state.live, "triggers": views})


class UpdateTrigger(Body):
    """PATCH …/triggers/{trigger_id}: at least one of the two (the decider checks,
    with the config merged and validated in full before anything changes)."""

    task: str | UnsetType = UNSET
    trigger_config: dict[str, Any] | None = None  # null: leave the config as it is


@documented(
    "Change a trigger's task or config",
    body=UpdateTrigger,
    response=shapes.TriggerUpdated,
    errors=(400, 404, 409, 413, 415),
)
async def update_trigger(request: Request) -> Response:
    session_id, trigger_id = _ids(request)
    service = service_of(request)
    # 404s before the body (hive's order), on a projection caught up with the head
    await service.confirm(session_id, lambda st: tc.find_trigger(st, session_id, trigger_id))
    body = await read_model(request, UpdateTrigger)
    given = msgspec.to_builtins(body)  # UNSET fields are left out: "task" in given
    cmd = tc.UpdateTrigger(body=given, now=clock_of(request).now())
    state = await service.execute(
        session_id, lambda st: tc.decide_update(st, session_id, trigger_id, cmd)
    )
    trigger = state.triggers.get(trigger_id)
    if trigger is None:  # removed meanwhile
        raise tc.trigger_not_found(trigger_id)
    return JSONResponse(
        {"trigger_id": trigger_id, "task": trigger.task, "trigger_config": trigger.trigger_config}
    )


SwitchDecider = Callable[[SessionState | None, str, str, float], list[NewEvent]]


async def _switch(
    request: Request, decider: SwitchDecider, changed: str, unchanged: str
) -> Response:
    """Activate or deactivate: `changed` when the decider appended, else `unchanged`."""
    session_id, trigger_id = _ids(request)
    now = clock_of(request).now()
    outcome = {"status": unchanged}

    def decide(state: SessionState | None) -> list[NewEvent]:
        events = decider(state, session_id, trigger_id, now)
        outcome["status"] = changed if events else unchanged
        return events

    await service_of(request).execute(session_id, decide)
    return JSONResponse({"status": outcome["status"], "trigger_id": trigger_id})


@documented("Activate a trigger", response=shapes.TriggerStatus, errors=(400, 404, 409))
async def activate_trigger(request: Request) -> Response:
    return await _switch(request, tc.decide_activate, "activated", "already_active")


@documented("Deactivate a trigger", response=shapes.TriggerStatus, errors=(404, 409))
async def deactivate_trigger(request: Request) -> Response:
    return await _switch(request, tc.decide_deactivate, "deactivated", "already_inactive")


@documented("Fire a trigger now", response=shapes.TriggerStatus, errors=(400, 404, 409))
async def run_trigger(request: Request) -> Response:
    session_id, trigger_id = _ids(request)
    now = clock_of(request).now()
    await service_of(request).execute(
        session_id, lambda st: tc.decide_run(st, session_id, trigger_id, now)
    )
    return JSONResponse({"status": "fired", "trigger_id": trigger_id})


PREFIX = "/api/sessions/{session_id}/triggers"
routes = [
    Route(PREFIX, list_triggers, methods=["GET"]),
    Route(PREFIX, create_trigger, methods=["POST"]),
    Route(PREFIX + "/{trigger_id}", update_trigger, methods=["PATCH"]),
    Route(PREFIX + "/{trigger_id}/activate", activate_trigger, methods=["POST"]),
    Route(PREFIX + "/{trigger_id}/deactivate", deactivate_trigger, methods=["POST"]),
    Route(PREFIX + "/{trigger_id}/run", run_trigger, methods=["POST"]),
]
