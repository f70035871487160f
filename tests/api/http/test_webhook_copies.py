"""Copies of one webhook delivery (same delivery id) sent at once, on a real server:
one fires, the others are reported as duplicates. Before commands on one session took
turns (api/core/service.py), every copy decided on the same state, and the copies after
the first were answered as idempotent retries of its append: all said "fired" though
the trigger fired once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.api.http.test_review_subs_webhooks import OPEN
from tests.support.sessions_support import make_colony, make_env


def test_copies_of_one_delivery_fire_once_and_say_so(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    colony = make_colony(env.root, "c1", triggers=[OPEN])
    server = env.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            r = c.post("/api/sessions", json={"agent_path": str(colony)})
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]

        async def copies(n: int, delivery: str) -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
                headers = {"x-github-delivery": delivery}
                return await asyncio.gather(
                    *[c.post("/api/webhooks/open", content=b"x", headers=headers) for _ in range(n)]
                )

        for round_, n in enumerate((2, 6, 12)):
            answers = asyncio.run(copies(n, f"d-{round_}"))
            assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
            fired = sum(len(a.json()["fired"]) for a in answers)
            dups = sum(len(a.json().get("duplicates", [])) for a in answers)
            assert (fired, dups) == (1, n - 1), [a.json() for a in answers]
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            triggers = c.get(f"/api/sessions/{sid}/triggers").json()["triggers"]
            assert triggers[0]["fire_count"] == 3
    finally:
        server.stop()
