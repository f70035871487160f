"""`hivelog bench http` runs end to end on a tiny size (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_http_runs_with_the_httpx_loader() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "bench",
            "http",
            "--json",
            "--http-loader",
            "httpx",
            "--http-events",
            "3000",
            "--http-seconds",
            "1",
            "--http-connections",
            "2",
            "--http-subscribers",
            "3",
            "--http-sse-events",
            "5",
            "--http-sessions",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    names = [row["measurement"] for row in rows]
    assert len(rows) == 8
    assert all("httpx" in n for n in names[:6])
    assert "If-None-Match -> 304" in names[3]
    assert "at random: 3 sessions" in names[4] and "throughput" in names[4]
    assert "3 subscribers (15 deliveries)" in names[6]
    assert all(row["value"] > 0 and row["baseline"] > 0 for row in rows)
