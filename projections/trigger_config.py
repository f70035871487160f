"""The one validator of a trigger_config, used by every path that accepts one.

PATCH, activation, colony load (triggers.json) and import-hive all call
`validate_config`; the schedule arithmetic calls it too before it trusts a
logged config. Besides hive's checks (in hive's order and texts) every number
is bounded to what the schedule arithmetic and the log's JSON encoding can
hold: a value that would overflow a millisecond conversion (`1e305` minutes),
exceed a 64-bit integer (`2**63`) or nest deeper than the encoder allows is
refused here with a message naming the field, before anything is appended.

Pure: no I/O, no clock; a refusal is a `ConfigError` whose `message` is the
400 body's text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadCronError, CroniterBadDateError

from eventstore.types import MAX_INT64

MISFIRE_POLICIES: Final = ("fire_once", "skip", "fire_all")
WEBHOOK_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MIN_INTERVAL_MS: Final = 100  # below this a timer would flood the log
MAX_INTERVAL_MINUTES: Final = 10 * 365 * 24 * 60  # 10 years: 5,256,000 minutes
MAX_GRACE_SECONDS: Final = 365 * 24 * 3600  # 1 year: 31,536,000 seconds
MAX_PORT: Final = 65_535
MAX_CONFIG_DEPTH: Final = 16  # nesting inside a trigger_config (the encoder stops at 254)
MAX_CONFIG_KEYS: Final = 256  # keys and list items in one config, all levels together
MAX_JSON_INT: Final = MAX_INT64  # both backends and orjson hold signed 64-bit integers
# A trigger's task and config together, as JSON: what a whole triggers.json may hold
# (api/core/agent_files.py), so every fire event it makes stays far under the store's
# 1 MiB per event; a PATCH could otherwise make a trigger whose fires are all refused.
MAX_TRIGGER_BYTES: Final = 256 * 1024
# croniter's random field ('R' or 'r', with an optional range and step): each parse
# draws new values, so the heap, the fire decision and other nodes would disagree
_RANDOM_FIELD = re.compile(r"(?i)(?:^|[\s,])R(?=[\s,(/]|$)")


class ConfigError(ValueError):
    """A trigger_config refused before anything changes; `message` is the 400 body's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_number(value: object) -> bool:
    """A JSON number: int or float, never a bool (True is an int in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounded(
    config: Mapping[str, Any], key: str, low: float, high: float, message: str
) -> float | None:
    """The value of a numeric field, or None when absent; `message` when it is not a
    finite number in [low, high]."""
    value = config.get(key)
    if value is None:
        return None
    if not (is_number(value) and math.isfinite(value) and low <= value <= high):
        raise ConfigError(message)
    return float(value)


# -- JSON-safety of the whole config ------------------------------------------------------


def json_problem(value: object, *, max_depth: int, max_items: int) -> tuple[str, str] | None:
    """(where, why) `value` cannot be stored as JSON in the log, or None. Iterative (no
    recursion, whatever the nesting): depth, item count, 64-bit integers, finite floats,
    str keys. `where` is a path like `a.b[2]` ("" for the value itself)."""
    stack: list[tuple[object, int, str]] = [(value, 0, "")]
    items = 0
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not -MAX_JSON_INT - 1 <= item <= MAX_JSON_INT:
                return where, "is outside the 64-bit integer range"
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return where, "must be a finite number"
            continue
        if isinstance(item, (dict, list)):
            if depth >= max_depth:
                return where, f"is nested deeper than {max_depth} levels"
            items += len(item)
            if items > max_items:
                return "", f"has more than {max_items} keys and items"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return where, "has a non-string key"
                    stack.append((child, depth + 1, f"{where}.{key}" if where else key))
            else:
                for index, child in enumerate(item):
                    stack.append((child, depth + 1, f"{where}[{index}]"))
            continue
        return where, "is not a JSON value"
    return None


def _check_json(config: Mapping[str, Any]) -> None:
    problem = json_problem(dict(config), max_depth=MAX_CONFIG_DEPTH, max_items=MAX_CONFIG_KEYS)
    if problem is not None:
        where, why = problem
        name = f"trigger_config.{where}" if where else "trigger_config"
        if len(name) > 120:
            name = name[:117] + "..."
        raise ConfigError(f"'{name}' {why}")


# -- timers (hive §3.3 order and texts; our own keys and bounds after hive's) ------------


def _check_cron(expr: str) -> None:
    if not croniter.is_valid(expr) or _RANDOM_FIELD.search(expr):
        raise ConfigError(f"Invalid cron expression: {expr}")
    try:
        first, second = (_first_slots(expr), _first_slots(expr))
    except (CroniterBadDateError, CroniterBadCronError, ValueError, KeyError, OverflowError):
        raise ConfigError(f"Invalid cron expression: {expr} (it never fires)") from None
    if first != second:  # a random field the pattern above did not know
        raise ConfigError(f"Invalid cron expression: {expr} (its slots are random)")


def _first_slots(expr: str) -> list[dt.datetime]:
    """Up to four slots from a fixed date, from a new parse (two parses must agree).
    The first must exist (else the cron never fires); later ones may not."""
    schedule = croniter(expr, dt.datetime(2026, 1, 1), max_years_between_matches=30)
    slots = [schedule.get_next(dt.datetime)]
    with contextlib.suppress(CroniterBadDateError):
        while len(slots) < 4:
            slots.append(schedule.get_next(dt.datetime))
    return slots


def _check_interval(interval: object) -> None:
    if (
        not isinstance(interval, (int, float))
        or isinstance(interval, bool)
        or not math.isfinite(interval)
        or interval <= 0
    ):
        raise ConfigError("'trigger_config.interval_minutes' must be > 0")
    if interval > MAX_INTERVAL_MINUTES:
        raise ConfigError(
            f"'trigger_config.interval_minutes' must be at most {MAX_INTERVAL_MINUTES} (10 years)"
        )
    if interval * 60_000 < MIN_INTERVAL_MS:
        raise ConfigError(
            f"'trigger_config.interval_minutes' must be at least {MIN_INTERVAL_MS / 60_000:.7f} "
            f"({MIN_INTERVAL_MS} ms)"
        )


def _check_timezone(config: Mapping[str, Any]) -> None:
    name = config.get("timezone")
    if name is None:
        return
    if not isinstance(name, str):
        raise ConfigError("'trigger_config.timezone' must be a string")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"Unknown time zone: '{name[:200]}'") from None


def _check_misfire(config: Mapping[str, Any]) -> None:
    policy = config.get("misfire")
    if policy is not None and policy not in MISFIRE_POLICIES:
        raise ConfigError(f"'trigger_config.misfire' must be one of {', '.join(MISFIRE_POLICIES)}")
    grace = config.get("misfire_grace_seconds")
    if grace is not None and not (is_number(grace) and math.isfinite(grace) and grace >= 0):
        raise ConfigError("'trigger_config.misfire_grace_seconds' must be a number >= 0")
    _bounded(
        config,
        "misfire_grace_seconds",
        0,
        MAX_GRACE_SECONDS,
        f"'trigger_config.misfire_grace_seconds' must be at most {MAX_GRACE_SECONDS} (1 year)",
    )


def validate_timer_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """hive's timer checks, in its order; a valid cron drops `interval_minutes` (cron wins)."""
    merged = dict(config)
    cron = merged.get("cron")
    interval = merged.get("interval_minutes")
    if cron is not None and not isinstance(cron, str):
        raise ConfigError("'trigger_config.cron' must be a string")
    if cron:
        _check_cron(cron)
        merged.pop("interval_minutes", None)
    elif interval is None:
        raise ConfigError("Timer trigger needs 'cron' or 'interval_minutes' in trigger_config.")
    else:
        _check_interval(interval)
    _check_timezone(merged)
    _check_misfire(merged)
    _check_json(merged)
    return merged


def validate_webhook_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """hive's set_trigger checks (path, methods), plus secret and port types and bounds."""
    merged = dict(config)
    path = merged.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError("'trigger_config.path' must be a string starting with '/'")
    methods = merged.get("methods", ["POST"])
    if (
        not isinstance(methods, list)
        or not methods
        or not all(isinstance(m, str) and m.upper() in WEBHOOK_METHODS for m in methods)
    ):
        raise ConfigError(
            f"'trigger_config.methods' must be a list of {', '.join(WEBHOOK_METHODS)}"
        )
    secret = merged.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise ConfigError("'trigger_config.secret' must be a string")
    port = merged.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        raise ConfigError("'trigger_config.port' must be an integer")
    _bounded(merged, "port", 1, MAX_PORT, f"'trigger_config.port' must be 1-{MAX_PORT}")
    _check_json(merged)
    return merged


def validate_config(trigger_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """THE check of a trigger_config (every entry point calls this one)."""
    if trigger_type == "timer":
        return validate_timer_config(config)
    if trigger_type == "webhook":
        return validate_webhook_config(config)
    _check_json(config)
    return dict(config)


def merge_config(trigger_type: str, current: Mapping[str, Any], update: object) -> dict[str, Any]:
    """PATCH's shallow merge (a `null` value removes the key), then full validation."""
    if not isinstance(update, dict):
        raise ConfigError("'trigger_config' must be an object")
    merged = {**current, **update}
    merged = {k: v for k, v in merged.items() if v is not None}
    return validate_config(trigger_type, merged)
