"""Trigger routes (hive's paths, codes and bodies) and the scheduler's lifespan.

hive's PATCH changed the task before validating the config; here every route
validates completely in a pure decider first, so a refused request appends
nothing. `GET /api/sessions/{id}/triggers` is ours: the authoritative listing
(hive HEAD added one too) with `active` and the schedule, computed from the log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.body import RequestError, read_json_object
from api.clock import Clock, RealClock
from api.responses import JSONResponse, error
from api.scheduler import Scheduler
from api.service import SessionService
from eventstore import NewEvent
from projections import trigger_commands as tc
from projections.errors import DomainError, session_not_found
from projections.ids import is_valid_id
from projections.schedule import DEFAULT_GRACE_SECONDS, DEFAULT_MISFIRE, next_fire_fields
from projections.session import SessionState
from projections.triggers import TriggerState

log = logging.getLogger("hivelog.triggers")

Handler = Callable[[Request], Awaitable[Response]]


def clock_of(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock if clock is not None else RealClock()


def service_of(request: Request) -> SessionService:
    service: SessionService = request.app.state.sessions
    return service


def _ids(request: Request) -> tuple[str, str]:
    session_id = request.path_params["session_id"]
    trigger_id = request.path_params.get("trigger_id", "")
    if not is_valid_id(session_id):
        raise session_not_found(session_id)
    return session_id, trigger_id


def refusals(handler: Handler) -> Handler:
    """DomainError / RequestError -> hive's `{"error": ...}` with their status."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except DomainError as exc:
            return error(exc.status_code, exc.message, **exc.extra)
        except RequestError as exc:
            return exc.response()

    return wrapped


def trigger_view(state: SessionState, trigger: TriggerState, now_ms: int) -> dict[str, Any]:
    """One trigger with its schedule; `next_fire_*` only while it will really fire."""
    config = trigger.trigger_config
    view: dict[str, Any] = {
        "id": trigger.id,
        "name": trigger.description or trigger.id,
        "trigger_type": trigger.trigger_type,
        "trigger_config": config,
        "task": trigger.task,
        "active": trigger.active,
        "next_fire_at": None,
        "next_fire_in": None,
        "fire_count": trigger.fire_count,
        "last_fired_at": trigger.last_fired_at,
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
    if state.live:
        view.update(next_fire_fields(trigger, now_ms))
    return view


@refusals
async def list_triggers(request: Request) -> Response:
    session_id, _ = _ids(request)
    state = service_of(request).get(session_id)
    if state is None:
        raise session_not_found(session_id)
    now_ms = clock_of(request).now_ms()
    views = [trigger_view(state, t, now_ms) for t in state.triggers.values()]
    return JSONResponse({"session_id": session_id, "live": state.live, "triggers": views})


@refusals
async def update_trigger(request: Request) -> Response:
    session_id, trigger_id = _ids(request)
    service = service_of(request)
    tc.find_trigger(service.get(session_id), session_id, trigger_id)  # 404s before the body
    body = await read_json_object(request)
    cmd = tc.UpdateTrigger(body=body, now=clock_of(request).now())
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


@refusals
async def activate_trigger(request: Request) -> Response:
    return await _switch(request, tc.decide_activate, "activated", "already_active")


@refusals
async def deactivate_trigger(request: Request) -> Response:
    return await _switch(request, tc.decide_deactivate, "deactivated", "already_inactive")


@refusals
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
    Route(PREFIX + "/{trigger_id}", update_trigger, methods=["PATCH"]),
    Route(PREFIX + "/{trigger_id}/activate", activate_trigger, methods=["POST"]),
    Route(PREFIX + "/{trigger_id}/deactivate", deactivate_trigger, methods=["POST"]),
    Route(PREFIX + "/{trigger_id}/run", run_trigger, methods=["POST"]),
]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the one scheduler after the sessions feature restored the projection."""
    clock: Clock | None = getattr(app.state, "clock", None)
    if clock is None:
        clock = RealClock()
        app.state.clock = clock
    service: SessionService | None = getattr(app.state, "sessions", None)
    if service is None:
        log.warning("no session service: triggers will not be scheduled")
        yield
        return
    app.state.next_fire = lambda state, trigger: next_fire_fields(trigger, clock.now_ms()).get(
        "next_fire_at"
    )
    settings = app.state.settings
    several_nodes = settings.db_url.startswith(("postgresql://", "postgres://"))
    scheduler = Scheduler(
        service,
        clock,
        node_id=settings.node_id,
        leases=app.state.store.leases if several_nodes else None,
    )
    app.state.scheduler = scheduler
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
