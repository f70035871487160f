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
