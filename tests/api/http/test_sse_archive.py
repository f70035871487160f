"""Resuming an SSE stream across an archive cut (`hivelog archive`), on a real server.

Before, a client that had seen 5 of 20 events and resumed with Last-Event-ID after the
archive moved versions 1-15 out got 16-20: 6-15 were skipped with no sign, against "every
later event exactly once". Now such a resume is a 410; one past the cut streams as before.
On SQLite and on PostgreSQL (whose `archived_after` answered False before it could archive).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import running_server
from tests.support.sessions_support import BACKENDS
from tests.support.sse_client import events, read_sse, store_at
from tests.support.tools_support import ROOT

WAIT = 30.0


def archive(db_url: str, out: Path) -> bool:
    """`hivelog archive --keep-last 5 --session arch`; whether it cut that session (it
    waits for the server's catalogue checkpoint to pass the events: retried, bounded)."""
    done = subprocess.run(
        [sys.executable, "-m", "tools", "archive", "--db", db_url, "--keep-last", "5",
         "--session", "arch", "-o", str(out), "--json"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return done.returncode == 0 and json.loads(done.stdout)["events"] == 15


async def status_of(client: httpx.AsyncClient, url: str, last_id: int) -> int:
    async with client.stream("GET", url, headers={"Last-Event-ID": str(last_id)}) as r:
        return r.status_code


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh log on each backend (set up before the test's event loop runs)."""
    if request.param == "postgres":
        return fresh_url(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'hivelog.db'}"


async def test_a_resume_across_an_archive_cut_is_410_not_a_silent_gap(
    tmp_path: Path, url: str
) -> None:
    env = {"HIVELOG_AGENTS_ROOTS": str(tmp_path), "HIVELOG_SSE_KEEPALIVE": "0.3"}
    with running_server(url, tmp_path, env=env) as srv:
        async with store_at(url) as store:
            await store.append("arch", events("custom", 20))
            await store.append("other", events("custom", 1))
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=WAIT) as client:
            stream = "/api/sessions/arch/events?types=*"
            async with client.stream("GET", stream + "&after=0") as r:
                seen = await asyncio.wait_for(read_sse(r, 5), WAIT)
            last = int(seen[-1].id or 0)
            cut = False
            for attempt in range(40):
                cut = archive(url, tmp_path / f"archive-{attempt}")
                if cut:
                    break
                await asyncio.sleep(0.5)
            assert cut, "the archive never passed the server's checkpoint"

            assert await status_of(client, stream, last) == 410
            assert await status_of(client, "/api/events?types=*", last) == 410
            r = await client.get(stream, headers={"Last-Event-ID": str(last)})
            assert "archived" in r.json()["error"]

            async with store_at(url) as store:
                first_live = (await store.read("arch", after_version=15, limit=1))[0].position
            async with client.stream(
                "GET", stream, headers={"Last-Event-ID": str(first_live - 1)}
            ) as r:
                assert r.status_code == 200
                resumed = await asyncio.wait_for(read_sse(r, 5), WAIT)
            assert resumed[0].id == first_live
            assert await status_of(client, "/api/sessions/other/events?types=*", last) == 200
