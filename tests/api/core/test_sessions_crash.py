"""SIGKILL the server while commands are in flight; every acknowledged one is back.

Acknowledged = the client got its 2xx. After a restart from the same SQLite file,
each acknowledged session exists with its colony and phase, live ones are live,
stopped ones are cold, and the restored views equal a fold of the whole log.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sessions_support import TIMER, client, make_colony, make_env

pytestmark = pytest.mark.slow

WORKERS = 4
PER_WORKER = 60  # bound on requests per worker thread


def test_sigkill_keeps_every_acknowledged_command(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    folder = make_colony(env.root, "crashy", triggers=[TIMER])
    server = env.start()
    acked: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def worker(n: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=10) as c:
            for i in range(PER_WORKER):
                sid = f"w{n}-{i}"
                body: dict[str, Any] = {"session_id": sid, "initial_phase": "incubating"}
                if i % 2:
                    body["agent_path"] = str(folder)
                try:
                    r = c.post("/api/sessions", json=body)
                    if r.status_code != 201:
                        return
                    with lock:
                        acked[sid] = {"live": True, "colony": bool(i % 2)}
                    if i % 3 == 0:
                        with lock:
                            acked[sid]["stopping"] = True  # unacknowledged: either state is fine
                        if c.delete(f"/api/sessions/{sid}").status_code != 200:
                            return
                        with lock:
                            acked[sid]["live"] = False
                except httpx.HTTPError:
                    return  # the server is gone
                with lock:
                    if len(acked) >= 40:
                        enough.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    enough.wait(timeout=60)
    server.kill()  # SIGKILL, mid-traffic
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 40

    server = env.start()
    try:
        with client(server) as c:
            live = {s["session_id"] for s in c.get("/api/sessions").json()["sessions"]}
            for sid, want in acked.items():
                got = c.get(f"/api/sessions/{sid}")
                assert got.status_code == 200, sid
                data = got.json()
                if want.get("stopping") and want["live"]:
                    assert data.get("cold") is True or sid in live
                elif want["live"]:
                    assert sid in live and data["queen_phase"] == "incubating"
                    assert data["has_worker"] is want["colony"]
                    if want["colony"]:
                        assert [e["id"] for e in data["entry_points"]] == ["default", "daily"]
                        assert data["entry_points"][1]["active"] is True
                else:
                    assert data["cold"] is True
                    assert (data["agent_path"] == str(folder)) is want["colony"]
    finally:
        server.stop()
