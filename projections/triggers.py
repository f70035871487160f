"""Trigger state inside a session, and the fold of every trigger event type.

hive kept `active`, fire counts and next-fire times only in memory, so they were
lost on restart; here each is folded from the log. Payload shapes are hive's
(§2.3); hive merges runtime stats into `trigger_config` on the wire, so those
keys are stripped before the config is kept.

The schedule position is data too: `anchor_at` is when the current schedule
started (activation, or a config change while active) and `last_scheduled_at`
the newest slot already handled (fired, skipped or recorded as missed), so the
next slot is a pure function of the state (`projections.schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

TRIGGER_EVENT_TYPES = frozenset(
    {
        "trigger_available",
        "trigger_activated",
        "trigger_deactivated",
        "trigger_updated",
        "trigger_removed",
        "trigger_fired",
        "missed_triggers",
        "webhook_received",
        "trigger_fire_skipped",
        "trigger_missed_resolved",
    }
)
RUNTIME_CONFIG_KEYS = frozenset({"next_fire_in", "next_fire_at", "fire_count", "last_fired_at"})


@dataclass(frozen=True, slots=True)
class TriggerState:
    id: str
    trigger_type: str
    trigger_config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    task: str = ""
    active: bool = False
    fire_count: int = 0
    last_fired_at: int | None = None  # epoch ms
    last_scheduled_at: int | None = None  # epoch ms of the newest slot handled
    anchor_at: int | None = None  # epoch ms the current schedule started from
    skipped_count: int = 0  # fires refused by gating (trigger_fire_skipped)
    missed_count: int = 0  # slots missed while down or stopped (missed_triggers)
    webhook_count: int = 0  # webhook hits received (webhook_received)

    def to_dict(self) -> dict[str, Any]:
        """Shallow (the config dict is shared, never mutated): checkpoints encode 10k of
        these every few seconds, and `dataclasses.asdict` deep-copies."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TriggerState:
        return cls(**value)


_FIELDS = tuple(f.name for f in fields(TriggerState))
_new = object.__new__
_set = object.__setattr__


def _evolve(previous: TriggerState, **changes: Any) -> TriggerState:
    """`dataclasses.replace` without its per-field checks and `__init__` (~4x faster):
    every timer fire folds one of these, and TriggerState has no `__post_init__`."""
    new = _new(TriggerState)
    for name in _FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(previous, name))
    return new


def clean_config(config: object) -> dict[str, Any]:
    """The definition's config without the runtime stats hive merges into it."""
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in config.items() if k not in RUNTIME_CONFIG_KEYS}


def _int_or_none(value: object) -> int | None:
    """An int a view and the log can hold again (64-bit), else None: a huge logged
    number (an import, an old log) must not make every read of the session a 500."""
    if type(value) is int and -(2**63) <= value < 2**63:  # the common case, checked first
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not -(2**63) <= value < 2**63:  # also False for NaN
        return None
    return int(value)


def _defined(previous: TriggerState | None, trigger_id: str, data: dict[str, Any]) -> TriggerState:
    """A definition from an available/activated/updated payload, over what was known."""
    base = previous or TriggerState(id=trigger_id, trigger_type="timer")
    changes: dict[str, Any] = {}
    if isinstance(data.get("trigger_type"), str):
        changes["trigger_type"] = data["trigger_type"]
    if "trigger_config" in data:
        changes["trigger_config"] = clean_config(data["trigger_config"])
    if isinstance(data.get("name"), str):
        changes["description"] = data["name"]
    if isinstance(data.get("task"), str):
        changes["task"] = data["task"]
    return replace(base, **changes)


def _later(previous: int | None, value: object) -> int | None:
    slot = _int_or_none(value)
    if slot is None:
        return previous
    return slot if previous is None else max(previous, slot)


def _activated(
    previous: TriggerState | None, defined: TriggerState, at_ms: int | None
) -> TriggerState:
    """Active; the schedule restarts only when it was inactive or its config changed
    (a repeated activation, e.g. on resume, keeps the grid and the missed-slot count)."""
    restart = (
        previous is None
        or not previous.active
        or previous.anchor_at is None
        or previous.trigger_config != defined.trigger_config
    )
    return replace(defined, active=True, anchor_at=at_ms if restart else defined.anchor_at)


def fold_trigger(
    triggers: dict[str, TriggerState],
    event_type: str,
    data: dict[str, Any],
    ts: float | None = None,
) -> dict[str, TriggerState]:
    """(triggers, event) -> triggers. Returns a new dict when anything changes.

    `ts` is the event's envelope time (epoch seconds): it anchors schedules.
    """
    trigger_id = data.get("trigger_id")
    if not isinstance(trigger_id, str):
        return triggers
    at_ms = round(ts * 1000) if ts is not None else None
    previous = triggers.get(trigger_id)
    if event_type == "trigger_available":
        return {**triggers, trigger_id: _defined(previous, trigger_id, data)}
    if event_type == "trigger_activated":
        defined = _defined(previous, trigger_id, data)
        return {**triggers, trigger_id: _activated(previous, defined, at_ms)}
    if event_type == "trigger_updated":
        defined = _defined(previous, trigger_id, data)
        if (
            defined.active
            and previous is not None
            and previous.trigger_config != defined.trigger_config
        ):
            defined = _evolve(defined, anchor_at=at_ms)  # hive restarts the timer on a new config
        return {**triggers, trigger_id: defined}
    if previous is None:
        return triggers
    if event_type == "trigger_deactivated":
        return {**triggers, trigger_id: _evolve(previous, active=False)}
    if event_type == "trigger_removed":
        return {k: v for k, v in triggers.items() if k != trigger_id}
    if event_type == "trigger_fired":
        count = _int_or_none(data.get("fire_count"))
        fired = _evolve(
            previous,
            fire_count=count if count is not None else previous.fire_count + 1,
            last_fired_at=_int_or_none(data.get("last_fired_at"))
            or at_ms
            or previous.last_fired_at,
            last_scheduled_at=_later(previous.last_scheduled_at, data.get("scheduled_at")),
        )
        return {**triggers, trigger_id: fired}
    if event_type == "trigger_fire_skipped":
        skipped = _evolve(
            previous,
            skipped_count=previous.skipped_count + 1,
            last_scheduled_at=_later(previous.last_scheduled_at, data.get("scheduled_at")),
        )
        return {**triggers, trigger_id: skipped}
    if event_type == "missed_triggers":
        missed = _evolve(
            previous,
            missed_count=previous.missed_count + (_int_or_none(data.get("count")) or 0),
            last_scheduled_at=_later(previous.last_scheduled_at, data.get("handled_through")),
        )
        return {**triggers, trigger_id: missed}
    if event_type == "trigger_missed_resolved":
        # hive 54fd8db sets the persisted last_fired_at to "now" for every decision
        return {**triggers, trigger_id: _evolve(previous, last_fired_at=at_ms)}
    if event_type == "webhook_received":
        return {**triggers, trigger_id: _evolve(previous, webhook_count=previous.webhook_count + 1)}
    return triggers
