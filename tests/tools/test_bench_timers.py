"""`hivelog bench timers` runs end to end on a small size and reports its figures."""

from __future__ import annotations

import json

import pytest

from tools.cli import main


@pytest.mark.slow
def test_bench_timers_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "timers", "--json", "--timers-count", "40", "--timers-sessions", "4"]
    args += ["--timers-interval", "1", "--timers-seconds", "2"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["timers"] == 40 and result["sessions"] == 4
    assert result["fires"] > 0 and result["cpu_per_fire_us"] > 0
    assert result["lateness_p50_ms"] <= result["lateness_p99_ms"] <= result["lateness_max_ms"]


@pytest.mark.parametrize("name", ["t", 'a"scheduled_at":5', "scheduled_at", '\\"scheduled_at\\":7'])
@pytest.mark.parametrize("slot", [1_767_225_600_123, 0, -5])
def test_the_slot_is_read_from_the_stored_payload(name: str, slot: int) -> None:
    import orjson

    from projections.envelope import new_event
    from tools.bench_timers import _scheduled_at

    data = {"trigger_id": "t", "name": name, "task": name, "scheduled_at": slot, "next_fire_at": 9}
    raw = orjson.dumps(new_event("trigger_fired", data, timestamp=1.0).data)
    assert _scheduled_at(raw) == slot
    assert _scheduled_at(orjson.dumps({"data": {"scheduled_at": slot}, "x": 1})) == slot
