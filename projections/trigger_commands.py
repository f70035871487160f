"""Pure deciders for trigger commands: (state, command) -> events, or a DomainError.

Every check runs before any event is built, so a refused command changes nothing
(hive applied a PATCH's `task` before validating its config). Scheduled outcomes
get the event id derived from (session, trigger, slot), so the same slot can be
recorded only once, whichever process or retry decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from eventstore import NewEvent
from projections.commands import require_live
from projections.envelope import new_event
from projections.errors import Conflict, DomainError, Invalid, NotFound
from projections.schedule import (
    Backlogs,
    FirePlan,
    fire_event_text,
    missed_event_id,
    next_fire_fields,
    next_slot,
    parse_schedule,
    plan_due,
    sane_ms,
    taken_event_text,
)
from projections.session import SessionState
from projections.trigger_config import (
    MAX_TRIGGER_BYTES,
    ConfigError,
    merge_config,
    validate_config,
)
from projections.triggers import TriggerState

STARTABLE_TYPES = ("timer", "webhook")


def trigger_not_found(trigger_id: str) -> DomainError:
    return NotFound(f"Trigger '{trigger_id}' not found")


def find_trigger(
    state: SessionState | None, session_id: str, trigger_id: str
) -> tuple[SessionState, TriggerState]:
    """hive's order: the session (404), then the trigger (404)."""
    live = require_live(state, session_id)
    trigger = live.triggers.get(trigger_id)
    if trigger is None:
        raise trigger_not_found(trigger_id)
    return live, trigger


def _entry_node(state: SessionState) -> str | None:
    return (state.colony.worker_name or None) if state.colony is not None else None


def _colony_id(state: SessionState) -> str | None:
    return state.colony.colony_id if state.colony is not None else None


def _name(trigger: TriggerState) -> str:
    return trigger.description or trigger.id


def _event(state: SessionState, type: str, data: dict[str, Any], now: float, **kw: Any) -> NewEvent:
    return new_event(type, data, timestamp=now, colony_id=_colony_id(state), **kw)


# -- PATCH ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateTrigger:
    """A PATCH body already parsed as a JSON object."""

    body: dict[str, Any]
    now: float


def decide_update(
    state: SessionState | None, session_id: str, trigger_id: str, cmd: UpdateTrigger
) -> list[NewEvent]:
    live, trigger = find_trigger(state, session_id, trigger_id)
    task = trigger.task
    if "task" in cmd.body:
        if not isinstance(cmd.body["task"], str):
            raise Invalid("'task' must be a string")
        task = cmd.body["task"]
    config = trigger.trigger_config
    update = cmd.body.get("trigger_config")
    if update is not None:
        try:
            config = merge_config(trigger.trigger_type, trigger.trigger_config, update)
        except ConfigError as exc:
            raise Invalid(exc.message) from None
    if "task" not in cmd.body and update is None:
        raise Invalid("Provide at least one of 'task' or 'trigger_config'")
    if len(orjson.dumps({"task": task, "trigger_config": config})) > MAX_TRIGGER_BYTES:
        raise Invalid(
            f"'task' and 'trigger_config' together may take at most {MAX_TRIGGER_BYTES} "
            "bytes as JSON"
        )
    data = {
        "trigger_id": trigger_id,
        "task": task,
        "trigger_config": config,
        "trigger_type": trigger.trigger_type,
        "name": _name(trigger),
        "entry_node": _entry_node(live),
    }
    return [_event(live, "trigger_updated", data, cmd.now)]


# -- activate / deactivate -----------------------------------------------------------


def stats_config(trigger: TriggerState, now_ms: int) -> dict[str, Any]:
    """hive's wire shape: the config with next fire and fire stats merged in."""
    out = dict(trigger.trigger_config)
    out.update(next_fire_fields(trigger, now_ms))
    if trigger.fire_count or trigger.last_fired_at is not None:
        out["fire_count"] = trigger.fire_count
        if trigger.last_fired_at is not None:
            out["last_fired_at"] = trigger.last_fired_at
    return out


def decide_activate(
    state: SessionState | None, session_id: str, trigger_id: str, now: float
) -> list[NewEvent]:
    """[] when already active (hive's `already_active`)."""
    live, trigger = find_trigger(state, session_id, trigger_id)
    if trigger.active:
        return []
    if trigger.trigger_type not in STARTABLE_TYPES:
        raise Invalid(f"Unsupported trigger type: {trigger.trigger_type}")
    try:
        validate_config(trigger.trigger_type, trigger.trigger_config)
    except ConfigError as exc:
        raise Invalid(f"Failed to start trigger: {exc.message}") from None
    now_ms = round(now * 1000)
    started = TriggerState(**{**trigger.to_dict(), "active": True, "anchor_at": now_ms})
    data: dict[str, Any] = {
        "trigger_id": trigger_id,
        "trigger_type": trigger.trigger_type,
        "trigger_config": stats_config(started, now_ms),
        "name": _name(trigger),
    }
    if (entry := _entry_node(live)) is not None:
        data["entry_node"] = entry
    return [_event(live, "trigger_activated", data, now)]


def decide_deactivate(
    state: SessionState | None, session_id: str, trigger_id: str, now: float
) -> list[NewEvent]:
    """[] for an unknown or inactive trigger (hive's `already_inactive`, 200)."""
    live = require_live(state, session_id)
    trigger = live.triggers.get(trigger_id)
    if trigger is None or not trigger.active:
        return []
    data = {"trigger_id": trigger_id, "name": _name(trigger)}
    return [_event(live, "trigger_deactivated", data, now)]


# -- fires ---------------------------------------------------------------------------


def _fired(
    state: SessionState,
    trigger: TriggerState,
    count: int,
    now_ms: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "trigger_id": trigger.id,
        "trigger_type": trigger.trigger_type,
        "name": _name(trigger),
        "task": trigger.task,
        "last_fired_at": now_ms,
        "fire_count": count,
        **extra,
    }


def decide_run(
    state: SessionState | None, session_id: str, trigger_id: str, now: float
) -> list[NewEvent]:
    """POST …/run: one forced fire; the schedule and the active flag stay as they are."""
    live, trigger = find_trigger(state, session_id, trigger_id)
    if live.colony is None:
        raise Conflict("Colony not loaded")
    now_ms = round(now * 1000)
    extra = {"forced": True, **next_fire_fields(trigger, now_ms)}
    data = _fired(live, trigger, trigger.fire_count + 1, now_ms, extra)
    return [_event(live, "trigger_fired", data, now)]


def gate(state: SessionState) -> str | None:
    """Why a fire may not happen now (hive skipped silently), or None."""
    if not state.live:
        return "session_not_live"
    if state.colony is None:
        return "colony_not_loaded"
    return None


def _paused_through(state: SessionState) -> int:
    """Slots up to the session's last (re)start fell due while it was stopped (0 when the
    logged time is not a usable number)."""
    try:
        paused = round(state.loaded_at * 1000)
    except (OverflowError, ValueError, TypeError):
        return 0
    return paused if sane_ms(paused) else 0


def scheduled_events(
    state: SessionState,
    trigger: TriggerState,
    now_ms: int,
    session_id: str,
    *,
    taken: frozenset[str] = frozenset(),
    backlogs: Backlogs | None = None,
) -> list[NewEvent]:
    """The outcome of every slot of one timer due at `now_ms` (may be none).

    `taken`: derived ids the store already holds (the scheduler learns them from its
    refusals). A slot whose fire id is taken is not fired again: it is recorded as
    skipped (`fire_id_taken`) under an id derived from the taken one, so the trigger
    goes on to its next slot. `backlogs`: count cron backlogs within a step budget."""
    schedule = parse_schedule(trigger.trigger_type, trigger.trigger_config)
    if schedule is None or not trigger.active or not sane_ms(trigger.anchor_at):
        return []  # a bad logged value means "never fires", never an exception here
    anchor = trigger.anchor_at
    assert anchor is not None
    after = max(trigger.last_scheduled_at or anchor, anchor)
    now = now_ms / 1000
    events: list[NewEvent] = []
    paused = _paused_through(state)
    if paused > after:  # resumed after a stop: what fell due meanwhile is skipped, and said
        stopped = plan_due(
            schedule,
            after,
            min(paused, now_ms),
            anchor,
            policy="skip",
            grace_ms=-1,
            backlogs=backlogs,
        )
        if stopped.missed:
            missed = _missed(state, trigger, stopped, "session_stopped", now, session_id, taken)
            events.append(missed)
            after = stopped.handled_through or after
    plan = plan_due(schedule, after, now_ms, anchor, backlogs=backlogs)
    if plan.handled_through is None:
        return events
    if plan.missed:
        events.append(_missed(state, trigger, plan, "downtime", now, session_id, taken))
    following = next_slot(schedule, plan.handled_through, anchor)
    reason = gate(state)
    count = trigger.fire_count
    for slot in plan.fire:
        event_id = fire_event_text(session_id, trigger.id, slot)  # str(fire_event_id(...))
        if taken and event_id in taken:
            events.append(_taken(state, trigger, slot, event_id, now, taken))
            continue
        if reason is not None:
            data = {
                "trigger_id": trigger.id,
                "trigger_type": trigger.trigger_type,
                "name": _name(trigger),
                "scheduled_at": slot,
                "reason": reason,
            }
            events.append(_event(state, "trigger_fire_skipped", data, now, event_id=event_id))
            continue
        count += 1
        data = _fired(state, trigger, count, now_ms, {"scheduled_at": slot})
        if following is not None:
            data["next_fire_at"] = following
            data["next_fire_in"] = max(0.0, (following - now_ms) / 1000)
        if slot in plan.catch_up:
            data["catch_up"] = True
        events.append(_event(state, "trigger_fired", data, now, event_id=event_id))
    return events


def _untaken(event_id: str, trigger: TriggerState, taken: frozenset[str]) -> str:
    """`event_id` when it is free, else the first `taken_event_text` not taken either."""
    if event_id not in taken:
        return event_id
    anchor = trigger.anchor_at if trigger.anchor_at is not None else 0
    n = 0
    while (other := taken_event_text(event_id, anchor, n)) in taken:
        n += 1  # ends: `taken` is finite
    return other


def _taken(
    state: SessionState,
    trigger: TriggerState,
    slot: int,
    event_id: str,
    now: float,
    taken: frozenset[str],
) -> NewEvent:
    """A slot whose derived fire id is already stored: not fired again (that id stands
    for this trigger id's outcome of this slot), recorded as skipped so it is handled."""
    data = {
        "trigger_id": trigger.id,
        "trigger_type": trigger.trigger_type,
        "name": _name(trigger),
        "scheduled_at": slot,
        "reason": "fire_id_taken",
        "taken_event_id": event_id,
    }
    return _event(
        state, "trigger_fire_skipped", data, now, event_id=_untaken(event_id, trigger, taken)
    )


def _missed(
    state: SessionState,
    trigger: TriggerState,
    plan: FirePlan,
    reason: str,
    now: float,
    session_id: str,
    taken: frozenset[str] = frozenset(),
) -> NewEvent:
    assert plan.handled_through is not None
    fired = len(plan.catch_up)
    if taken:  # a catch-up slot whose fire id is taken is skipped, not fired
        fired -= sum(fire_event_text(session_id, trigger.id, s) in taken for s in plan.catch_up)
    data = {
        "trigger_id": trigger.id,
        "trigger_type": trigger.trigger_type,
        "name": _name(trigger),
        "count": plan.missed,
        "count_exact": plan.missed_exact,
        "first_missed_at": plan.first_missed,
        "last_missed_at": plan.last_missed,
        "decision": plan.decision,
        "fired": fired,
        "capped": plan.capped,
        "dropped": plan.dropped,
        "handled_through": plan.handled_through,
        "reason": reason,
    }
    event_id = str(missed_event_id(session_id, trigger.id, plan.handled_through))
    if taken:
        event_id = _untaken(event_id, trigger, taken)
    return _event(state, "missed_triggers", data, now, event_id=event_id)


def decide_fires(
    state: SessionState | None,
    session_id: str,
    trigger_ids: set[str],
    now_ms: int,
    *,
    taken: frozenset[str] = frozenset(),
    backlogs: Backlogs | None = None,
) -> list[NewEvent]:
    """The scheduler's command: settle every due slot of these triggers (stale ids are
    fine); `taken` and `backlogs` as in `scheduled_events`."""
    if state is None:
        return []
    events: list[NewEvent] = []
    for trigger_id in sorted(trigger_ids):
        trigger = state.triggers.get(trigger_id)
        if trigger is None:
            continue
        if backlogs is None:
            events.extend(scheduled_events(state, trigger, now_ms, session_id, taken=taken))
            continue
        decide = partial(
            scheduled_events, state, trigger, now_ms, session_id, taken=taken, backlogs=backlogs
        )
        # on `Uncounted` this decision is asked again: the triggers done are not redone
        events.extend(backlogs.remembered(state, (trigger_id, now_ms, taken), decide))
    return events


# -- webhooks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookHit:
    """One HTTP request to /api/webhooks/{path}, already reduced to what is recorded."""

    path: str
    method: str
    headers: dict[str, str]
    payload: Any
    query_params: dict[str, str]
    now: float
    hook_event_id: str | None = None  # derived from a delivery id, so redeliveries dedupe
    fire_event_id: str | None = None


def webhook_matches(trigger: TriggerState, path: str, method: str) -> bool:
    config = trigger.trigger_config
    methods = config.get("methods") or ["POST"]
    return (
        trigger.trigger_type == "webhook"
        and trigger.active
        and config.get("path") == path
        and isinstance(methods, list)
        and method.upper() in {str(m).upper() for m in methods}
    )


def decide_webhook(
    state: SessionState | None, session_id: str, trigger_id: str, hit: WebhookHit
) -> list[NewEvent]:
    """`webhook_received` (stream_id = trigger id, as hive), then the fire or its refusal."""
    if state is None:
        return []
    trigger = state.triggers.get(trigger_id)
    if trigger is None or not webhook_matches(trigger, hit.path, hit.method):
        return []  # deactivated or changed since the request was matched
    received = {
        "trigger_id": trigger_id,
        "path": hit.path,
        "method": hit.method,
        "headers": hit.headers,
        "payload": hit.payload,
        "query_params": hit.query_params,
    }
    events = [
        new_event(
            "webhook_received",
            received,
            timestamp=hit.now,
            stream_id=trigger_id,
            colony_id=_colony_id(state),
            event_id=hit.hook_event_id,
        )
    ]
    reason = gate(state)
    if reason is not None:
        data = {
            "trigger_id": trigger_id,
            "trigger_type": trigger.trigger_type,
            "name": _name(trigger),
            "reason": reason,
        }
        events.append(
            _event(state, "trigger_fire_skipped", data, hit.now, event_id=hit.fire_event_id)
        )
        return events
    now_ms = round(hit.now * 1000)
    extra = {"webhook": {"path": hit.path, "method": hit.method}}
    data = _fired(state, trigger, trigger.fire_count + 1, now_ms, extra)
    events.append(_event(state, "trigger_fired", data, hit.now, event_id=hit.fire_event_id))
    return events
