"""Bad input at every edge, against a real `hivelog serve`: a clear 4xx naming the field or
file, and the log's head does not move (nothing appended)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.core.agent_files import MAX_TRIGGERS_FILE_BYTES
from api.core.colonies import MAX_TRIGGERS
from eventstore import open_store
from tests.support.server import Server, start_server
from tests.support.sessions_support import Env, head, make_colony, make_env
from tests.support.triggers_support import session_events, timer

TIMER = {
    "id": "tick",
    "name": "Tick",
    "trigger_type": "timer",
    "trigger_config": {"interval_minutes": 60},
    "task": "tick task",
}
HOOK = {
    "id": "gh",
    "name": "GitHub",
    "trigger_type": "webhook",
    "trigger_config": {"path": "/signed", "methods": ["POST"], "secret": "s3cret"},
    "task": "handle push",
}
SECRET = "TOP-SECRET-CONTENT-9f2c"
_names = count()


@dataclass
class Served:
    env: Env
    server: Server
    client: httpx.Client
    session_id: str  # live, colony with TIMER and HOOK loaded
    outside: Path  # a folder outside every allowed root, holding a secret

    def colony(self, **kw: Any) -> Path:
        return make_colony(self.env.root, f"c{next(_names)}", **kw)

    def refused(self, method: str, url: str, status: int, *names: str, **kw: Any) -> str:
        """Send; expect `status` with every name in the error text; head unchanged."""
        before = head(self.client)
        r = self.client.request(method, url, **kw)
        assert r.status_code == status, r.text
        message: str = r.json()["error"]
        for name in names:
            assert name in message, message
        assert head(self.client) == before, "a refused request appended something"
        return message


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("edges")
    env = make_env(tmp)
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"colony_name": SECRET}))
    server = start_server(env.db_url, tmp, env.args(), env.env())
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            colony = make_colony(env.root, "main", triggers=[TIMER, HOOK])
            r = c.post("/api/sessions", json={"agent_path": str(colony)})
            assert r.status_code == 201, r.text
            yield Served(env, server, c, r.json()["session_id"], outside)
    finally:
        server.stop()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- trigger numbers over PATCH --------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"interval_minutes": 1e305}, "interval_minutes"),
        ({"interval_minutes": 2**63}, "interval_minutes"),
        ({"interval_minutes": 10 * 365 * 24 * 60 + 1}, "interval_minutes"),
        ({"interval_minutes": True}, "interval_minutes"),
        ({"misfire_grace_seconds": 1e308}, "misfire_grace_seconds"),
        ({"misfire_grace_seconds": 2**63}, "misfire_grace_seconds"),
        ({"misfire_grace_seconds": 365 * 24 * 3600 + 1}, "misfire_grace_seconds"),
        ({"misfire_grace_seconds": False}, "misfire_grace_seconds"),
        ({"extra": json.loads('{"a":' + nested(300) + "}")}, "trigger_config.extra.a"),
    ],
)
def test_patch_out_of_bounds_number_is_400_naming_the_field(
    served: Served, config: dict[str, Any], field: str
) -> None:
    url = f"/api/sessions/{served.session_id}/triggers/tick"
    served.refused("PATCH", url, 400, field, json={"trigger_config": config})
    r = served.client.get(f"/api/sessions/{served.session_id}/triggers")
    assert r.status_code == 200
    # the stored config is unchanged; the row's config also carries the live timing
    config = r.json()["triggers"][0]["trigger_config"]
    timing = {"next_fire_at", "next_fire_in", "fire_count", "last_fired_at"}
    assert {k: v for k, v in config.items() if k not in timing} == {"interval_minutes": 60}


def test_patch_with_non_finite_json_is_400(served: Served) -> None:
    url = f"/api/sessions/{served.session_id}/triggers/tick"
    body = b'{"trigger_config": {"interval_minutes": NaN}}'
    served.refused(
        "PATCH",
        url,
        400,
        "Invalid JSON",
        content=body,
        headers={"content-type": "application/json"},
    )


def test_webhook_port_out_of_range_is_400(served: Served) -> None:
    url = f"/api/sessions/{served.session_id}/triggers/gh"
    served.refused(
        "PATCH", url, 400, "trigger_config.port", json={"trigger_config": {"port": 2**40}}
    )


# -- colony load: triggers.json ---------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"interval_minutes": 1e305}, "interval_minutes"),
        ({"interval_minutes": 2**63}, "interval_minutes"),
        ({"interval_minutes": 5, "misfire_grace_seconds": 1e308}, "misfire_grace_seconds"),
    ],
)
def test_colony_triggers_json_numbers_are_validated(
    served: Served, config: dict[str, Any], field: str
) -> None:
    trigger = {**TIMER, "trigger_config": config}
    folder = served.colony(triggers=[trigger])
    served.refused(
        "POST",
        "/api/sessions",
        400,
        "triggers.json",
        "'tick'",
        field,
        json={"agent_path": str(folder)},
    )
    # the same folder through the other load path: POST /api/sessions/{id}/colony
    r = served.client.post("/api/sessions", json={})
    assert r.status_code == 201
    sid = r.json()["session_id"]
    url = f"/api/sessions/{sid}/colony"
    served.refused("POST", url, 400, "triggers.json", field, json={"agent_path": str(folder)})


def test_huge_triggers_json_is_refused_before_reading(served: Served) -> None:
    folder = served.colony(triggers=[TIMER])
    with (folder / "triggers.json").open("r+b") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB (sparse: never read, refused by size)
    message = served.refused(
        "POST", "/api/sessions", 400, "triggers.json", json={"agent_path": str(folder)}
    )
    assert str(MAX_TRIGGERS_FILE_BYTES) in message


def test_too_many_triggers_is_400(served: Served) -> None:
    many = [{"id": f"t{i}", "trigger_type": "none"} for i in range(MAX_TRIGGERS + 1)]
    folder = served.colony(triggers=many)
    served.refused(
        "POST",
        "/api/sessions",
        400,
        "triggers.json",
        f"the limit is {MAX_TRIGGERS}",
        json={"agent_path": str(folder)},
    )


# -- colony load: every file in the folder ----------------------------------------------


def _deep(folder: Path, name: str, depth: int) -> None:
    (folder / name).write_text(nested(depth))


def _symlink_out(served: Served, folder: Path, name: str) -> None:
    (folder / name).unlink(missing_ok=True)
    (folder / name).symlink_to(served.outside / "secret.json")


def _symlink_in(served: Served, folder: Path, name: str) -> None:
    (folder / "real.txt").write_text("{}")
    (folder / name).unlink(missing_ok=True)
    (folder / name).symlink_to(folder / "real.txt")


def _fifo(served: Served, folder: Path, name: str) -> None:
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)


@pytest.mark.parametrize(
    ("name", "spoil", "why"),
    [
        ("triggers.json", lambda s, f, n: _deep(f, n, 5000), "nested deeper"),
        ("metadata.json", lambda s, f, n: _deep(f, n, 5000), "nested deeper"),
        ("metadata.json", lambda s, f, n: _deep(f, n, 300), "nested deeper"),
        ("researcher.json", lambda s, f, n: _deep(f, n, 5000), "nested deeper"),
        ("metadata.json", _symlink_out, "symbolic link"),
        ("researcher.json", _symlink_out, "symbolic link"),
        ("triggers.json", _symlink_out, "symbolic link"),
        ("metadata.json", _symlink_in, "symbolic link"),
        ("metadata.json", _fifo, "not a regular file"),
    ],
)
def test_bad_file_in_agent_folder_is_400_naming_it(
    served: Served, name: str, spoil: Any, why: str
) -> None:
    folder = served.colony(triggers=[TIMER])
    spoil(served, folder, name)
    served.refused("POST", "/api/sessions", 400, name, why, json={"agent_path": str(folder)})


def test_symlinked_secret_never_reaches_the_log(served: Served) -> None:
    folder = served.colony()
    _symlink_out(served, folder, "metadata.json")
    served.refused("POST", "/api/sessions", 400, "metadata.json", json={"agent_path": str(folder)})
    served.refused(
        "PATCH",
        "/api/agents/metadata",
        400,
        "metadata.json",
        "symbolic link",
        json={"agent_path": str(folder), "icon": "x"},
    )
    link = folder / "metadata.json"
    assert link.is_symlink() and link.resolve() == served.outside / "secret.json"
    assert SECRET in (served.outside / "secret.json").read_text()  # target untouched
    assert SECRET not in json.dumps(_all_payloads(served.env.db_url))


def _all_payloads(db_url: str) -> list[Any]:
    async def read() -> list[Any]:
        store = await open_store(db_url)
        try:
            return [e.data for e in await store.read_all(after_position=0, limit=100_000)]
        finally:
            await store.close()

    return asyncio.run(read())


def test_discover_skips_and_reports_a_bad_folder(served: Served) -> None:
    bad = served.colony()
    _deep(bad, "metadata.json", 5000)
    linked = served.env.root / f"link{next(_names)}"
    linked.symlink_to(served.outside, target_is_directory=True)
    (served.outside / "worker.json").write_text(json.dumps({"name": SECRET}))
    r = served.client.get("/api/discover")
    assert r.status_code == 200, r.text
    paths = {e["path"] for e in r.json()["Your Agents"]}
    assert str(served.env.root / "main") in paths
    assert str(bad) not in paths
    assert SECRET not in r.text
    log = served.server.log()
    assert f"skipping {bad}" in log and f"skipping {linked}" in log


# -- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/sessions"),
        ("PATCH", "/api/agents/metadata"),
        ("DELETE", "/api/agents"),
        ("POST", "/api/sessions/{sid}/colony"),
    ],
)
def test_300_character_path_component_is_400(served: Served, method: str, url: str) -> None:
    path = str(served.env.root / ("a" * 300) / "x")
    body = {"agent_path": path, "icon": "x"}
    served.refused(method, url.format(sid=served.session_id), 400, "agent_path", json=body)


# -- webhooks --------------------------------------------------------------------------


def test_non_ascii_signature_is_401(served: Served) -> None:
    served.refused(
        "POST",
        "/api/webhooks/signed",
        401,
        "X-Hub-Signature-256",
        content=b"{}",
        headers={"X-Hub-Signature-256": "sha256=\u00e9\u00e9".encode("latin-1")},
    )


# -- bad values already in the log -----------------------------------------------------


def test_bad_values_already_in_the_log_never_stop_the_scheduler_or_a_view(tmp_path: Path) -> None:
    """A log written before these bounds (or by hand) holds poisoned timers: the views
    answer 200 and the other sessions' timers keep firing."""
    env = make_env(tmp_path)

    async def seed() -> None:
        store = await open_store(env.db_url)
        now = 1_700_000_000.0
        try:
            poisoned = [
                timer("big", interval_minutes=2**63),
                timer("huge", interval_minutes=1e305),
                timer("grace", interval_minutes=1, misfire_grace_seconds=1e308),
            ]
            await store.append("poisoned", session_events("poisoned", poisoned, now))
            fast = [timer("fast", interval_minutes=0.2 / 60)]
            await store.append("healthy", session_events("healthy", fast, now))
        finally:
            await store.close()

    asyncio.run(seed())
    server = start_server(env.db_url, tmp_path, env.args(), env.env())
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            for url in ("", "/triggers", "/entry-points"):
                r = c.get(f"/api/sessions/poisoned{url}")
                assert r.status_code == 200, (url, r.text)
            fired = 0
            for _ in range(400):  # bounded: the healthy timer fires every 200 ms
                listing = c.get("/api/sessions/healthy/triggers").json()["triggers"]
                fired = {t["id"]: t["fire_count"] for t in listing}["fast"]
                if fired >= 3:
                    break
                time.sleep(0.05)
            assert fired >= 3
            assert c.get("/api/health").status_code == 200
            r = c.get("/api/sessions/poisoned/triggers")
            assert all(t["fire_count"] == 0 for t in r.json()["triggers"])
    finally:
        server.stop()


# -- sizes that add up, and queens -------------------------------------------------------


def test_files_that_fit_alone_but_not_together_are_400_naming_the_folder(served: Served) -> None:
    big = "x" * (255 * 1024)  # each file under its 256 KiB limit; 4 copies are over 1 MiB
    folder = served.colony(triggers=[{**TIMER, "task": big}], metadata={"notes": big})
    worker = {"name": "researcher", "description": big, "intro_message": "hi"}
    (folder / "researcher.json").write_text(json.dumps(worker))
    served.refused(
        "POST",
        "/api/sessions",
        400,
        str(folder),
        "worker_colony_loaded",
        json={"agent_path": str(folder)},
    )
    (folder / "metadata.json").write_text(json.dumps({"notes": "small"}))
    r = served.client.post("/api/sessions", json={"agent_path": str(folder)})
    assert r.status_code == 201, r.text[:300]  # 2 x description + task fit


def test_symlinked_queen_profile_is_400_naming_it(served: Served) -> None:
    queen = served.env.hive_home / "agents" / "queens" / "queen_linked"
    queen.mkdir(parents=True)
    (queen / "profile.yaml").symlink_to(served.outside / "secret.json")
    served.refused(
        "POST", "/api/sessions", 400, "profile.yaml", json={"queen_name": "queen_linked"}
    )
    outside_queen = served.outside / "queen_elsewhere"
    outside_queen.mkdir()
    (outside_queen / "profile.yaml").write_text(f"name: {SECRET}\n")
    (queen.parent / "queen_elsewhere").symlink_to(outside_queen, target_is_directory=True)
    served.refused(
        "POST", "/api/sessions", 400, "queen_elsewhere", json={"queen_name": "queen_elsewhere"}
    )


def _signed(body: bytes, content_type: str) -> dict[str, str]:
    digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "content-type": content_type}


def test_webhook_payload_too_deep_to_record_is_400(served: Served) -> None:
    body = ('{"a":' + nested(300) + "}").encode()
    served.refused(
        "POST",
        "/api/webhooks/signed",
        400,
        "nested too deeply",
        content=body,
        headers=_signed(body, "application/json"),
    )


def test_webhook_payload_too_large_once_escaped_is_413(served: Served) -> None:
    body = b"\x01" * (600 * 1024)  # under the 1 MiB body limit; 6 bytes each as JSON
    served.refused(
        "POST",
        "/api/webhooks/signed",
        413,
        "Webhook too large to record",
        content=body,
        headers=_signed(body, "text/plain"),
    )


def test_resolve_missed_with_deeply_nested_json_is_400(served: Served) -> None:
    """The route decodes its own body: nesting deep enough to recurse was a 500."""
    deep = b"[" * 200_000 + b"]" * 200_000
    url = f"/api/sessions/{served.session_id}/colony/resolve_missed"
    for body in (deep, b'{"decisions": {"tick": ' + deep + b"}}"):
        served.refused(
            "POST",
            url,
            400,
            "invalid JSON body",
            content=body,
            headers={"content-type": "application/json"},
        )


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/sessions"), ("PATCH", "/api/agents/metadata")]
)
def test_typed_bodies_with_an_unknown_field_nested_too_deep_are_400(
    served: Served, method: str, path: str
) -> None:
    """msgspec recursed into an unknown field 200,000 levels deep: a 500 on every route
    with a typed body; now the same 400 as any JSON that cannot be read."""
    body = b'{"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    served.refused(
        method, path, 400, "Invalid JSON body", content=body,
        headers={"content-type": "application/json"},
    )  # fmt: skip
