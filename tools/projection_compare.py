"""Comparing a fresh fold of the catalogue with a checkpointed one, for people.

Pure: both sides are the JSON form (`projections.catalogue.to_dict`, as stored),
and the result names what differs (which sessions, which fields), not just "no".
"""

from __future__ import annotations

from typing import Any

import orjson

from projections import catalogue as cat

MAX_DIFFERENCES = 50


def as_json(state: cat.CatalogueState) -> dict[str, Any]:
    """The state exactly as a checkpoint stores it (through JSON, so types match)."""
    value: dict[str, Any] = orjson.loads(cat.encode(state))
    return value


def differences(checkpointed: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's JSON and a rebuild's; empty when equal."""
    if checkpointed == rebuilt:
        return []
    found: list[str] = []
    for key in sorted(set(checkpointed) | set(rebuilt)):
        if key == "sessions":
            continue
        if checkpointed.get(key) != rebuilt.get(key):
            found.append(
                f"{key}: checkpoint has {_short(checkpointed.get(key))}, "
                f"a fold from scratch gives {_short(rebuilt.get(key))}"
            )
    old = _by_id(checkpointed.get("sessions"))
    new = _by_id(rebuilt.get("sessions"))
    for sid in old.keys() - new.keys():
        found.append(f"session {sid}: in the checkpoint, not in a fold from scratch")
    for sid in new.keys() - old.keys():
        found.append(f"session {sid}: in a fold from scratch, not in the checkpoint")
    for sid in old.keys() & new.keys():
        a, b = old[sid], new[sid]
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        for field in fields:
            found.append(
                f"session {sid}: {field} is {_short(a.get(field))} in the checkpoint, "
                f"{_short(b.get(field))} from scratch"
            )
    if not found and list(old) != list(new):
        found.append("sessions are in a different order")
    return found[:MAX_DIFFERENCES] + (
        [f"... and {len(found) - MAX_DIFFERENCES} more"] if len(found) > MAX_DIFFERENCES else []
    )


def _by_id(sessions: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(sessions, list):
        return {}
    return {
        str(s.get("session_id")): s for s in sessions if isinstance(s, dict) and "session_id" in s
    }


def _short(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= 80 else text[:79] + "…"
