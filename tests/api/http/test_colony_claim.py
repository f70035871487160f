"""One canonical session per colony across hosts: two real `hivelog serve` processes on
one log (SQLite file or PostgreSQL), each with its own colonies folder and HIVE_HOME, so
their per-host locks (asyncio lock, flock on the colonies folder) are different and only
the colony's claim in the log (`$colony-<colony_id>`) can settle who opens it.

Before the claim, concurrent opens of one new colony on the two hosts made one session
per host (8 of 8 tries), and an open on the second host after the first had finished
made a second session too (its folder had no `queen_session_id`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.core.colony_ids import CLAIM_EVENT, Claim, claim_stream, try_claim
from eventstore import RecordedEvent, open_store
from projections import catalogue as cat
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import Server, start_server
from tests.support.sessions_support import head, make_colony

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
CATCH_UP_SECONDS = 20.0
_names = count()


@dataclass
class Host:
    server: Server
    root: Path  # this host's own colonies folder

    def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with httpx.Client(base_url=self.server.base_url, timeout=60) as c:
            r = c.post("/api/sessions", json=body)
            value: dict[str, Any] = r.json()
            return r.status_code, value

    def get(self, url: str) -> Any:
        with httpx.Client(base_url=self.server.base_url, timeout=60) as c:
            r = c.get(url)
            assert r.status_code == 200, r.text
            return r.json()


@dataclass
class Cluster:
    url: str
    hosts: list[Host]

    def open_all(self, bodies: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, Any]]:
        """POST /api/sessions side by side, each body to the host of its index."""
        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(lambda hb: self.hosts[hb[0]].post(hb[1]), bodies))

    def in_log(self, colony_id: str) -> set[str]:
        """The sessions the whole log binds to the colony (the catalogue folded afresh)."""

        async def fold() -> set[str]:
            store = await open_store(self.url)
            events: list[RecordedEvent] = []
            try:
                while page := await store.read_all(events[-1].position if events else 0):
                    events.extend(page)
            finally:
                await store.close()
            sessions = cat.fold_all(events).sessions.values()
            return {s.session_id for s in sessions if s.colony and s.colony.colony_id == colony_id}

        return asyncio.run(fold())

    def bound(self, colony_id: str) -> list[set[str]]:
        """Per host, the sessions its projection binds to the colony, once it shows what
        the log binds (bounded poll: the other host folds another process's appends)."""
        expected = self.in_log(colony_id)
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            seen = [_rows(h, colony_id) for h in self.hosts]
            if seen == [expected] * len(seen) or time.monotonic() > deadline:
                return seen

    def claims(self, colony_id: str) -> list[str]:
        """The session ids the colony's claims name, oldest first (read from the log)."""

        async def read() -> list[str]:
            store = await open_store(self.url)
            try:
                events = await store.read(claim_stream(colony_id))
            finally:
                await store.close()
            assert {e.type for e in events} <= {CLAIM_EVENT}
            return [_named(e.data_json) for e in events]

        return asyncio.run(read())


def _rows(host: Host, colony_id: str) -> set[str]:
    rows = host.get(f"/api/colonies/{colony_id}/sessions")["sessions"]
    return {str(row["session_id"]) for row in rows}


def _named(data_json: bytes) -> str:
    return str(orjson.loads(data_json)["data"]["session_id"])


@pytest.fixture(scope="module", params=BACKENDS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("claim")
    if request.param == "postgres":
        url = fresh_url(request.getfixturevalue("pg_dsn"))
    else:
        url = f"sqlite:///{tmp / 'hivelog.db'}"
    hosts: list[Host] = []
    try:
        for node in ("host-a", "host-b"):
            root = (tmp / node / "colonies").resolve()
            root.mkdir(parents=True)
            (tmp / node / "hive").mkdir()
            env = {"HIVE_HOME": str(tmp / node / "hive"), "HIVELOG_AGENTS_ROOTS": ""}
            args = ["--agents-root", str(root), "--node-id", node]
            hosts.append(Host(start_server(url, tmp, args, env), root))
        yield Cluster(url, hosts)
    finally:
        for h in hosts:
            h.server.stop()


def _one_session(cluster: Cluster, colony_id: str, results: list[tuple[int, Any]]) -> str:
    """Every open answered 201 with one session, the only one either host binds to
    the colony, and the one the claim in force names."""
    assert [status for status, _ in results] == [201] * len(results), results
    ids = {str(body["session_id"]) for _, body in results}
    assert len(ids) == 1, (colony_id, ids)
    (sid,) = ids
    assert cluster.in_log(colony_id) == {sid}
    assert cluster.bound(colony_id) == [{sid}, {sid}]
    assert cluster.claims(colony_id)[-1] == sid
    return sid


def test_concurrent_opens_on_two_hosts_make_one_session(cluster: Cluster) -> None:
    for _ in range(4):
        name = f"race{next(_names)}"
        results = cluster.open_all([(i % 2, {"colony_id": name}) for i in range(4)])
        _one_session(cluster, name, results)
        assert cluster.claims(name) == [results[0][1]["session_id"]]  # one claim, no churn


def test_an_open_on_the_other_host_afterwards_finds_the_same_session(cluster: Cluster) -> None:
    """Host B has no folder for a colony host A opened: it used to make a new one."""
    name = f"later{next(_names)}"
    first = cluster.hosts[0].post({"colony_id": name})
    second = cluster.hosts[1].post({"colony_id": name})
    sid = _one_session(cluster, name, [first, second])
    assert (cluster.hosts[1].root / name / "metadata.json").is_file()  # written on B too
    assert cluster.hosts[1].post({"colony_id": name})[1]["session_id"] == sid


def test_delete_then_reopen_makes_one_new_session(cluster: Cluster) -> None:
    """A claim whose session was deleted is superseded (appended at the claim stream's
    version): concurrent reopens on both hosts make one new session."""
    name = f"gone{next(_names)}"
    old = _one_session(cluster, name, cluster.open_all([(0, {"colony_id": name})]))
    with httpx.Client(base_url=cluster.hosts[1].server.base_url, timeout=60) as c:
        assert c.delete(f"/api/sessions/history/{old}").status_code == 200
    results = cluster.open_all([(i % 2, {"colony_id": name}) for i in range(4)])
    new = _one_session(cluster, name, results)
    assert new != old and cluster.claims(name) == [old, new]
    assert cluster.hosts[0].post({"colony_id": name})[1]["session_id"] == new


def test_a_colony_folder_deleted_through_the_api_releases_its_claim(cluster: Cluster) -> None:
    """DELETE /api/agents removes the colony; opening its id again makes a new colony
    with a new session (as before claims), on either host, and only one."""
    name = f"rmdir{next(_names)}"
    a = cluster.hosts[0]
    old = _one_session(cluster, name, [a.post({"colony_id": name})])
    with httpx.Client(base_url=a.server.base_url, timeout=60) as c:
        r = c.request("DELETE", "/api/agents", json={"agent_path": str(a.root / name)})
        assert r.status_code == 200, r.text
    results = cluster.open_all([(1, {"colony_id": name}), (0, {"colony_id": name})])
    new = str(results[0][1]["session_id"])
    assert new != old and [body["session_id"] for _, body in results] == [new, new], results
    assert cluster.claims(name) == [old, new]
    # the old session, stopped by the delete, stays in the log, bound to the old colony
    assert cluster.in_log(name) == {old, new}
    assert cluster.bound(name) == [{old, new}, {old, new}]


def test_a_first_prompt_never_lands_in_a_colony_another_host_holds(cluster: Cluster) -> None:
    """hive: a new colony with a first prompt gets a fresh id when the name is taken;
    a name claimed on another host is taken, though this host has no folder for it."""
    name = f"prompt{next(_names)}"
    a, b = cluster.hosts
    held = _one_session(cluster, name, [a.post({"colony_id": name})])
    status, fresh = b.post({"colony_id": name, "initial_prompt": "build me a thing"})
    assert status == 201 and fresh["colony_id"] == f"{name}_2", fresh
    assert fresh["session_id"] != held and not (b.root / name).exists()


def test_a_claim_whose_session_never_came_is_started_by_the_next_open(cluster: Cluster) -> None:
    """The claimant died between its claim and its session: after a bounded wait for
    it, each host's open starts the claimed session itself; exactly one creates it."""
    name = f"orphan{next(_names)}"
    sid = f"claimed_{name}"

    async def claim() -> None:
        store = await open_store(cluster.url)
        try:
            assert await try_claim(store, name, sid, Claim(None, 0), time.time())
        finally:
            await store.close()

    asyncio.run(claim())
    results = cluster.open_all([(0, {"colony_id": name}), (1, {"colony_id": name})])
    assert _one_session(cluster, name, results) == sid
    assert cluster.claims(name) == [sid]


def test_a_refused_open_claims_nothing(cluster: Cluster) -> None:
    """A new colony whose `session_id` names a live DM is a 409 (the DM has no colony
    to keep): the claim was appended first, so the 409 had written to the log and every
    later open of the colony was the same 409."""
    name = f"refused{next(_names)}"
    a = cluster.hosts[0]
    dm = a.post({})[1]["session_id"]
    with httpx.Client(base_url=a.server.base_url, timeout=60) as c:
        before = head(c)
        r = c.post("/api/sessions", json={"colony_id": name, "session_id": dm})
        assert r.status_code == 409, r.text
        assert head(c) == before, "a refused open appended something"
    assert cluster.claims(name) == []
    status, opened = a.post({"colony_id": name})
    assert status == 201 and opened["session_id"] != dm, opened


def test_a_fork_claims_its_colony_and_skips_names_claimed_elsewhere(cluster: Cluster) -> None:
    """A fork on host A made colony `slug`; host B, with no such folder, opened a second
    session for it, and a fork on B to the same name made a second colony `slug`."""
    slug = f"fork{next(_names)}"
    a, b = cluster.hosts
    dm = a.post({})[1]["session_id"]
    status, forked = a.post({"colony_id": slug, "source_session_id": dm})
    assert status == 201 and forked["colony_id"] == slug, forked
    status, opened = b.post({"colony_id": slug})
    assert status == 201 and opened["session_id"] == forked["session_id"], opened
    dm_b = b.post({})[1]["session_id"]
    status, other = b.post({"colony_id": slug, "source_session_id": dm_b})
    assert status == 201 and other["colony_id"] == f"{slug}_2", other


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    folders=st.sampled_from(["none", "a", "b", "both"]),
    targets=st.lists(st.sampled_from([0, 1]), min_size=2, max_size=5),
    deleted_before=st.booleans(),
)
def test_any_race_of_opens_ends_with_one_session(
    cluster: Cluster, folders: str, targets: list[int], deleted_before: bool
) -> None:
    """Whichever hosts already hold the colony's folder (same contents), whichever host
    each open goes to, and whether the colony's previous canonical session was
    deleted: every open answers the one session bound to the colony."""
    name = f"prop{next(_names)}"
    for index, host in enumerate(cluster.hosts):
        if folders in ("both", "ab"[index]):
            make_colony(host.root, name, metadata={"created_at": 1.0})
    if deleted_before:
        old = cluster.hosts[1].post({"colony_id": name})[1]["session_id"]
        with httpx.Client(base_url=cluster.hosts[0].server.base_url, timeout=60) as c:
            assert c.delete(f"/api/sessions/history/{old}").status_code == 200
    results = cluster.open_all([(t, {"colony_id": name}) for t in targets])
    _one_session(cluster, name, results)


def test_a_colony_loads_on_the_other_host_right_after_the_create(cluster: Cluster) -> None:
    """POST /api/sessions/{id}/colony on host B right after host A created the session:
    B's early 'is it live?' check is decided on a projection caught up with the log (it
    was a 404 in 12 of 30 tries while B had not folded A's create yet)."""
    name = f"loadable{next(_names)}"
    make_colony(cluster.hosts[1].root, name)
    with (
        httpx.Client(base_url=cluster.hosts[0].server.base_url, timeout=60) as a,
        httpx.Client(base_url=cluster.hosts[1].server.base_url, timeout=60) as b,
    ):
        for _ in range(12):
            created = a.post("/api/sessions", json={})
            assert created.status_code == 201, created.text
            sid = created.json()["session_id"]
            loaded = b.post(f"/api/sessions/{sid}/colony", json={"colony_id": name})
            assert loaded.status_code == 200, loaded.text
            assert loaded.json()["session_id"] == sid
