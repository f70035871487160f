"""hive 54fd8db's trigger commands that 3c390c9e lacked, as pure deciders.

- `decide_create`: POST /api/sessions/{id}/triggers (RS:1191-1319), hive's check
  order and texts, its id slugging (RS:1152-1169); one `trigger_activated` event
  that carries the whole definition (hive's payload plus `task`), so the fold
  needs nothing else.
- `decide_resolve_missed`: POST …/colony/resolve_missed (RS:1527-1566,
  QLT:724-784). hive only rewrote triggers.json; here each valid decision is
  recorded as `trigger_missed_resolved`, and `fire_latest` also as a `trigger_fired`
  with `catch_up: true`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from eventstore import NewEvent
from projections.commands import require_live
from projections.envelope import new_event
from projections.errors import Conflict, Invalid
from projections.schedule import (
    ConfigError,
    next_fire_fields,
    parse_schedule,
    validate_timer_config,
)
from projections.session import SessionState
from projections.triggers import TriggerState

SLUG_CHARS = 40
RESOLVE_DECISIONS = {"fire_latest": "fired", "skip": "skipped", "reschedule": "rescheduled"}


def slug_id(name: str, taken: set[str] | frozenset[str]) -> str:
    """hive's `_slugify_trigger_id`: `user-` + lower-cased name, every non-alphanumeric
    (Unicode-aware) char a `-`, runs collapsed, ends stripped, 40 chars; `-2`, `-3`, …
    on a collision."""
    text = "".join(c if c.isalnum() else "-" for c in name.lower())
    while "--" in text:
        text = text.replace("--", "-")
    text = text.strip("-")[:SLUG_CHARS] or "schedule"
    base = f"user-{text}"
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}-{n}"
        n += 1
    return candidate


@dataclass(frozen=True, slots=True)
class CreateTrigger:
    """The body's fields as sent (any JSON type); checked by `decide_create`."""

    name: Any
    task: Any
    trigger_type: Any
    trigger_config: Any
    now: float


def _required_text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"'{key}' is required")
    return value.strip()


def check_create(cmd: CreateTrigger) -> tuple[str, str, dict[str, Any]]:
    """hive's checks 3-10 in order: (name, task, stored config) or Invalid."""
    name = _required_text(cmd.name, "name")
    task = _required_text(cmd.task, "task")
    trigger_type = "timer" if cmd.trigger_type is None else cmd.trigger_type
    if trigger_type != "timer":
        raise Invalid("Only 'timer' schedules can be created here.")
    config = cmd.trigger_config
    if not isinstance(config, dict):
        raise Invalid("'trigger_config' must be an object")
    given = {k: config.get(k) for k in ("cron", "interval_minutes")}
    try:
        checked = validate_timer_config({k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        raise Invalid(exc.message) from None
    if checked.get("cron"):
        return name, task, {"cron": checked["cron"]}  # other keys dropped, as hive
    return name, task, {"interval_minutes": checked["interval_minutes"]}


def _colony_id(state: SessionState) -> str | None:
    return state.colony.colony_id if state.colony is not None else None


def decide_create(
    state: SessionState | None, session_id: str, cmd: CreateTrigger
) -> tuple[str, list[NewEvent]]:
    """(the new trigger id, its `trigger_activated`). The session must be live; no
    colony is needed (hive keeps such a trigger in memory; here it is in the log)."""
    live = require_live(state, session_id)
    name, task, config = check_create(cmd)
    trigger_id = slug_id(name, frozenset(live.triggers))
    now_ms = round(cmd.now * 1000)
    started = TriggerState(
        id=trigger_id, trigger_type="timer", trigger_config=config, anchor_at=now_ms, active=True
    )
    wire = {**config, **next_fire_fields(started, now_ms)}
    data = {
        "trigger_id": trigger_id,
        "trigger_type": "timer",
        "trigger_config": wire,
        "name": name,
        "entry_node": None,
        "task": task,
        "created": True,
    }
    event = new_event("trigger_activated", data, timestamp=cmd.now, colony_id=_colony_id(live))
    return trigger_id, [event]


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def next_due_ms(trigger: TriggerState, now_ms: int) -> int | None:
    """hive's `next_due_at` after a resolution: next cron match, or now + interval."""
    schedule = parse_schedule(trigger.trigger_type, trigger.trigger_config)
    if schedule is None:
        return None
    if schedule.interval_ms is not None:
        return now_ms + schedule.interval_ms
    return next_fire_fields(
        TriggerState(
            id=trigger.id,
            trigger_type=trigger.trigger_type,
            trigger_config=trigger.trigger_config,
            active=True,
            anchor_at=now_ms,
            last_scheduled_at=now_ms,
        ),
        now_ms,
    ).get("next_fire_at")


def check_decisions(body: object) -> dict[str, Any]:
    """hive's `decisions = body.get("decisions") or {}`, which must be an object."""
    if not isinstance(body, dict):
        raise Invalid("invalid JSON body")
    decisions = body.get("decisions") or {}
    if not isinstance(decisions, dict):
        raise Invalid("decisions must be an object {trigger_id: decision}")
    return decisions


def require_colony(state: SessionState | None, session_id: str) -> SessionState:
    live = require_live(state, session_id)
    if live.colony is None:
        raise Conflict("Colony not loaded")
    return live


def decide_resolve_missed(
    state: SessionState | None, session_id: str, decisions: dict[str, Any], now: float
) -> tuple[dict[str, str], list[NewEvent]]:
    """(hive's `results`, the events recording each valid decision)."""
    live = require_colony(state, session_id)
    now_ms = round(now * 1000)
    results: dict[str, str] = {}
    events: list[NewEvent] = []
    cid = _colony_id(live)
    for trigger_id, decision in decisions.items():
        outcome = RESOLVE_DECISIONS.get(decision) if isinstance(decision, str) else None
        if outcome is None:
            results[trigger_id] = f"invalid_decision:{decision}"
            continue
        trigger = live.triggers.get(trigger_id)
        if trigger is None:
            results[trigger_id] = "unknown_trigger"
            continue
        results[trigger_id] = outcome
        due = next_due_ms(trigger, now_ms)
        resolved = {
            "trigger_id": trigger_id,
            "name": trigger.description or trigger_id,
            "decision": decision,
            "last_fired_at": _iso_ms(now_ms),
            "next_due_at": _iso_ms(due),
        }
        events.append(new_event("trigger_missed_resolved", resolved, timestamp=now, colony_id=cid))
        if decision == "fire_latest":
            fired = {
                "trigger_id": trigger_id,
                "trigger_type": trigger.trigger_type,
                "name": trigger.description or trigger_id,
                "task": trigger.task,
                "last_fired_at": now_ms,
                "fire_count": trigger.fire_count + 1,
                "catch_up": True,
            }
            events.append(new_event("trigger_fired", fired, timestamp=now, colony_id=cid))
    return results, events
