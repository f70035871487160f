"""Agent folders under attack and under load, against a real `hivelog serve` and real
folders: names that are not UTF-8, files where folders belong, ids checked before a
colony is written, concurrent opens and forks of one colony, metadata over the file
limit, and a folder swapped for a link between the check and the write."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.core.agent_files import MAX_AGENT_FILE_BYTES, AgentFileError
from api.core.colonies import read_colony, write_metadata
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import Server, start_server
from tests.support.sessions_support import Env, head, make_colony, make_env

_names = count()


@dataclass
class Served:
    env: Env
    server: Server
    client: httpx.Client

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(_names)}"

    def refused(self, status: int, body: dict[str, Any], *words: str) -> str:
        """POST /api/sessions: `status`, every word in the error, head unchanged."""
        before = head(self.client)
        r = self.client.post("/api/sessions", json=body)
        assert r.status_code == status, r.text
        message: str = r.json()["error"]
        for word in words:
            assert word in message, message
        assert head(self.client) == before, "a refused request appended something"
        return message


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("paths")
    env = make_env(tmp)
    server = start_server(env.db_url, tmp, env.args(), env.env())
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            yield Served(env, server, c)
    finally:
        server.stop()


def _non_utf8_colony(root: Path, name: bytes) -> bytes:
    folder = os.fsencode(root) + b"/" + name
    os.mkdir(folder)
    with open(folder + b"/worker.json", "w") as handle:
        handle.write(json.dumps({"name": "w"}))
    return folder


# -- names that are not UTF-8 ------------------------------------------------------------


def test_discover_skips_a_folder_whose_name_is_not_utf8(served: Served) -> None:
    """Such a name reaches Python as surrogates, which no JSON body can carry: one such
    folder made GET /api/discover a 500 for everyone."""
    good = make_colony(served.env.root, served.name("good"))
    _non_utf8_colony(served.env.root, served.name("bad").encode() + b"\xff")
    r = served.client.get("/api/discover")
    assert r.status_code == 200, r.text
    paths = [entry["path"] for entry in r.json()["Your Agents"]]
    assert str(good) in paths
    assert all("bad" not in p for p in paths)


def test_link_to_a_non_utf8_folder_is_400(served: Served) -> None:
    """The JSON names a valid path; it resolves to one that is not UTF-8 (was a 500)."""
    target = _non_utf8_colony(served.env.root, served.name("raw").encode() + b"\xfe")
    alias = served.env.root / served.name("alias")
    os.symlink(target, os.fsencode(alias))
    served.refused(400, {"agent_path": str(alias)}, "not valid UTF-8")


def test_worker_file_name_not_utf8_is_400(served: Served) -> None:
    folder = make_colony(served.env.root, served.name("w8"))
    os.unlink(folder / "researcher.json")
    with open(os.fsencode(folder) + b"/a\xff.json", "w") as handle:
        handle.write(json.dumps({"name": "w"}))
    served.refused(400, {"agent_path": str(folder)}, "not valid UTF-8")


# -- files where folders belong ------------------------------------------------------------


def test_colony_id_naming_a_regular_file_is_400(served: Served) -> None:
    name = served.name("file")
    (served.env.root / name).write_text("not a folder")
    served.refused(400, {"colony_id": name}, name, "not a folder")
    assert (served.env.root / name).read_text() == "not a folder"


@pytest.mark.parametrize("entry", ["metadata.json", "worker.json"])
def test_colony_file_that_is_a_folder_is_400(served: Served, entry: str) -> None:
    """ensure_minimal_colony replaced the file by rename, onto a folder: a 500."""
    name = served.name("dir")
    (served.env.root / name / entry).mkdir(parents=True)
    served.refused(400, {"colony_id": name}, entry, "not a regular file")
    assert (served.env.root / name / entry).is_dir()


# -- ids checked before a colony is written ------------------------------------------------


@pytest.mark.parametrize("field", ["queen_resume_from", "session_id"])
def test_bad_id_with_a_new_colony_id_writes_no_folder(served: Served, field: str) -> None:
    name = served.name("fresh")
    served.refused(400, {"colony_id": name, field: "../x"}, field)
    assert not (served.env.root / name).exists()


def test_deleted_session_id_with_a_new_colony_id_writes_no_folder(served: Served) -> None:
    c = served.client
    sid = c.post("/api/sessions", json={}).json()["session_id"]
    assert c.delete(f"/api/sessions/history/{sid}").status_code == 200
    name = served.name("reuse")
    served.refused(409, {"colony_id": name, "session_id": sid}, "deleted")
    assert not (served.env.root / name).exists()


# -- concurrent opens and forks ------------------------------------------------------------


def _post_all(served: Served, bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    def post(body: dict[str, Any]) -> tuple[int, Any]:
        with httpx.Client(base_url=served.server.base_url, timeout=30) as c:
            r = c.post("/api/sessions", json=body)
            return r.status_code, r.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_concurrent_opens_of_a_new_colony_make_one_session(served: Served) -> None:
    """Side by side, they made up to four 'canonical' sessions for one colony (or a 404
    from a half-written folder)."""
    for _ in range(5):
        name = served.name("crowd")
        results = _post_all(served, [{"colony_id": name}] * 4)
        assert [status for status, _ in results] == [201] * 4, results
        assert len({body["session_id"] for _, body in results}) == 1
        rows = served.client.get(f"/api/colonies/{name}/sessions").json()["sessions"]
        assert len(rows) == 1
        meta = json.loads((served.env.root / name / "metadata.json").read_text())
        assert meta["queen_session_id"] == results[0][1]["session_id"]


def test_concurrent_forks_of_one_dm_write_one_folder(served: Served) -> None:
    """The forks that lose (409) had already written their colony folder."""
    for _ in range(4):
        source = served.client.post("/api/sessions", json={"initial_phase": "independent"})
        slug = served.name("fork")
        body = {"colony_id": slug, "source_session_id": source.json()["session_id"]}
        statuses = sorted(status for status, _ in _post_all(served, [body] * 3))
        assert statuses == [201, 409, 409]
        written = [p.name for p in served.env.root.iterdir() if p.name.startswith(slug)]
        assert written == [slug]


# -- metadata.json over the limit ----------------------------------------------------------


def test_patch_metadata_over_the_file_limit_is_400(served: Served) -> None:
    """It was written, and then every load refused the colony's metadata.json."""
    folder = make_colony(served.env.root, served.name("big"))
    before_file = (folder / "metadata.json").read_bytes()
    before = head(served.client)
    icon = "x" * (MAX_AGENT_FILE_BYTES + 1)
    r = served.client.patch("/api/agents/metadata", json={"agent_path": str(folder), "icon": icon})
    assert r.status_code == 400, r.text
    assert "metadata.json" in r.json()["error"]
    assert head(served.client) == before
    assert (folder / "metadata.json").read_bytes() == before_file
    assert served.client.post("/api/sessions", json={"agent_path": str(folder)}).status_code == 201


# -- a folder swapped for a link after it was checked --------------------------------------


@contextlib.contextmanager
def swapped_for_a_link(
    folder: Path, outside: Path, parked: Path, before_each: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """While the block runs, a thread swaps `folder` for a link to `outside` and back as
    fast as it can (renamed to `parked`, the link made, then undone), as another process
    could between the service's check of a path and its use."""
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            before_each()
            os.rename(folder, parked)
            os.symlink(outside, folder)
            os.unlink(folder)
            os.rename(parked, folder)

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_folder_swapped_for_a_link_is_never_written_or_read_through(tmp_path: Path) -> None:
    """The folder was checked by path, then written and read by path: a swap in between
    (another process renames it and leaves a link to an outside folder) wrote
    metadata.json there and read its files. Bounded attempts; before the fix the outside
    file was written within a few hundred."""
    root = tmp_path.resolve() / "root"
    outside = tmp_path.resolve() / "outside"
    outside.mkdir()
    (outside / "metadata.json").write_text(json.dumps({"colony_name": "OUTSIDE"}))
    (outside / "w.json").write_text(json.dumps({"name": "OUTSIDE"}))
    folder = make_colony(root, "c", worker="w", metadata={})
    with swapped_for_a_link(folder, outside, root / "c.parked"):
        for attempt in range(5000):
            with contextlib.suppress(AgentFileError, FileNotFoundError):
                write_metadata(folder, {"n": attempt})
            with contextlib.suppress(AgentFileError, FileNotFoundError):
                facts = read_colony(folder)
                assert "OUTSIDE" not in json.dumps(facts.metadata) + facts.colony_name
            assert "n" not in json.loads((outside / "metadata.json").read_text())
    write_metadata(folder, {"n": "last"})  # unswapped, both work as before
    assert read_colony(folder).metadata["n"] == "last"


def test_delete_agent_never_removes_a_folder_outside_through_a_swapped_parent(
    served: Served,
) -> None:
    """DELETE /api/agents removed the validated path by path: a parent swapped for a link
    in between deleted the outside folder of that name (within a few requests)."""
    name = served.name("nest")
    outside = served.env.tmp / f"{name}-outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "precious.txt").write_text("keep me")
    parent = served.env.root / name
    (parent / "b").mkdir(parents=True)
    parked = served.env.root / f"{name}.parked"

    def remake() -> None:  # what a DELETE that got through removed
        with contextlib.suppress(OSError):
            (parent / "b").mkdir()

    statuses: set[int] = set()
    with swapped_for_a_link(parent, outside, parked, before_each=remake):
        for _ in range(300):
            body = {"agent_path": str(parent / "b")}
            statuses.add(served.client.request("DELETE", "/api/agents", json=body).status_code)
            assert (outside / "b" / "precious.txt").read_text() == "keep me"
    assert statuses <= {200, 400}
    (parent / "b").mkdir(exist_ok=True)
    r = served.client.request("DELETE", "/api/agents", json={"agent_path": str(parent / "b")})
    assert r.status_code == 200 and not (parent / "b").exists()


def test_open_by_id_when_queen_session_id_cannot_be_written_is_201(served: Served) -> None:
    """metadata.json just under its limit: the session was appended, then writing its
    queen_session_id was refused and the request answered 400 for a created session."""
    name = served.name("full")
    folder = make_colony(served.env.root, name)
    meta = {"colony_name": name, "pad": ""}
    meta["pad"] = "x" * (MAX_AGENT_FILE_BYTES - len(json.dumps(meta, indent=2)) - 10)
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2))
    first = served.client.post("/api/sessions", json={"colony_id": name})
    assert first.status_code == 201, first.text
    again = served.client.post("/api/sessions", json={"colony_id": name})
    assert again.status_code == 201, again.text
    assert again.json()["session_id"] == first.json()["session_id"]
    assert "queen_session_id" not in json.loads((folder / "metadata.json").read_text())


@pytest.mark.parametrize(
    "colony_id",
    ["€" * 128, "a\nb", "tab\there", "esc\x1b[31m", "del\x7f", "c1\x85"],
    ids=["over-NAME_MAX-bytes", "newline", "tab", "escape", "DEL", "C1"],
)
def test_colony_id_too_long_in_bytes_or_with_a_control_character_is_400(
    served: Served, colony_id: str
) -> None:
    """128 three-byte characters passed the 128-character bound and met ENAMETOOLONG
    (500); control characters made folder names with newlines and escapes."""
    served.refused(400, {"colony_id": colony_id}, "Invalid colony_id")
    sid = served.client.post("/api/sessions", json={}).json()["session_id"]
    before = head(served.client)
    r = served.client.post(f"/api/sessions/{sid}/colony", json={"colony_id": colony_id})
    assert r.status_code == 400, r.text
    assert head(served.client) == before
    assert sorted(p.name for p in served.env.root.iterdir() if colony_id in p.name) == []


def test_concurrent_metadata_merges_keep_every_change(tmp_path: Path) -> None:
    """Each merge read, changed and replaced metadata.json on its own: side by side (a
    PATCH of the icon beside an open by colony_id) one acknowledged change was lost."""
    folder = make_colony(tmp_path.resolve() / "root", "m")
    for trial in range(10):
        keys = [f"t{trial}_{n}" for n in range(8)]
        with ThreadPoolExecutor(len(keys)) as pool:
            list(pool.map(lambda key: write_metadata(folder, {key: True}), keys))
        meta = json.loads((folder / "metadata.json").read_text())
        assert [key for key in keys if key not in meta] == []


@pytest.mark.postgres
def test_two_nodes_opening_one_new_colony_make_one_session(
    pg_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two servers on one log and one agents root: each node serialized only its own
    requests, so both created a "canonical" session for the colony (7 of 8 tries)."""
    env = make_env(tmp_path)
    url = fresh_url(pg_dsn)
    nodes = [
        start_server(url, tmp_path, [*env.args(), "--node-id", node], env.env())
        for node in ("na", "nb")
    ]
    try:
        for trial in range(6):
            name = f"two{trial}"

            def post(base_url: str, name: str = name) -> str:
                with httpx.Client(base_url=base_url, timeout=30) as c:
                    r = c.post("/api/sessions", json={"colony_id": name})
                    assert r.status_code == 201, r.text
                    session_id: str = r.json()["session_id"]
                    return session_id

            with ThreadPoolExecutor(4) as pool:
                ids = set(pool.map(post, [n.base_url for n in nodes] * 2))
            assert len(ids) == 1, (name, ids)
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.slow
def test_a_colony_lock_held_by_a_hung_process_is_a_409_not_a_hang(tmp_path: Path) -> None:
    """Another process holding the colonies' flock for good (hung) made every open by
    colony_id poll forever; it is a 409 after `COLONY_LOCK_SECONDS`, nothing appended."""
    env = make_env(tmp_path)
    server = env.start()
    fd = os.open(env.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            before = head(c)
            r = c.post("/api/sessions", json={"colony_id": "held"})
            assert r.status_code == 409 and "busy" in r.json()["error"], r.text
            assert head(c) == before and not (env.root / "held").exists()
            fcntl.flock(fd, fcntl.LOCK_UN)
            assert c.post("/api/sessions", json={"colony_id": "held"}).status_code == 201
    finally:
        os.close(fd)
        server.stop()
