"""Trigger state inside a session, and the fold of every trigger event type.

hive kept `active`, fire counts and next-fire times only in memory, so they were
lost on restart; here each is folded from the log. Payload shapes are hive's
(§2.3); hive merges runtime stats into `trigger_config` on the wire, so those
keys are stripped before the config is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
    last_scheduled_at: int | None = None  # epoch ms of the slot the last fire was for

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TriggerState:
        return cls(**value)


def clean_config(config: object) -> dict[str, Any]:
    """The definition's config without the runtime stats hive merges into it."""
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in config.items() if k not in RUNTIME_CONFIG_KEYS}


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
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


def fold_trigger(
    triggers: dict[str, TriggerState], event_type: str, data: dict[str, Any]
) -> dict[str, TriggerState]:
    """(triggers, event) -> triggers. Returns a new dict when anything changes."""
    trigger_id = data.get("trigger_id")
    if not isinstance(trigger_id, str):
        return triggers
    previous = triggers.get(trigger_id)
    if event_type in ("trigger_available", "trigger_updated"):
        return {**triggers, trigger_id: _defined(previous, trigger_id, data)}
    if event_type == "trigger_activated":
        return {**triggers, trigger_id: replace(_defined(previous, trigger_id, data), active=True)}
    if previous is None:
        return triggers
    if event_type == "trigger_deactivated":
        return {**triggers, trigger_id: replace(previous, active=False)}
    if event_type == "trigger_removed":
        return {k: v for k, v in triggers.items() if k != trigger_id}
    if event_type == "trigger_fired":
        count = _int_or_none(data.get("fire_count"))
        fired = replace(
            previous,
            fire_count=count if count is not None else previous.fire_count + 1,
            last_fired_at=_int_or_none(data.get("last_fired_at")) or previous.last_fired_at,
            last_scheduled_at=_int_or_none(data.get("scheduled_at")) or previous.last_scheduled_at,
        )
        return {**triggers, trigger_id: fired}
    return triggers
