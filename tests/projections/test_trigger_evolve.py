"""`_evolve` (the fold's fast copy) builds exactly what `dataclasses.replace` builds."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.triggers import _FIELDS, TriggerState, _evolve

small = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))
changes = st.fixed_dictionaries(
    {},
    optional={
        "fire_count": st.integers(0, 10**9),
        "last_fired_at": small,
        "last_scheduled_at": small,
        "anchor_at": small,
        "active": st.booleans(),
        "skipped_count": st.integers(0, 10**9),
        "missed_count": st.integers(0, 10**9),
        "webhook_count": st.integers(0, 10**9),
        "description": st.text(max_size=5),
    },
)


@given(changes, changes)
def test_evolve_equals_replace(first: dict[str, Any], second: dict[str, Any]) -> None:
    base = dataclasses.replace(
        TriggerState(id="t", trigger_type="timer", trigger_config={"cron": "* * * * *"}), **first
    )
    fast = _evolve(base, **second)
    assert fast == dataclasses.replace(base, **second)
    assert all(getattr(fast, name) == getattr(base, name) for name in _FIELDS if name not in second)
    assert type(fast) is TriggerState
    assert fast.to_dict() == dataclasses.replace(base, **second).to_dict()
