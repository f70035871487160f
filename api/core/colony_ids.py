"""hive 54fd8db names colonies by id (`colonies/<colony_id>`), not by path.

This module turns a `colony_id` into a folder strictly inside an allowed root
(hive itself does no path check), writes the minimal colony hive writes for a
new one (`_ensure_minimal_colony`, SM:334-370), and picks the fork's de-duplicated
id. It also keeps each colony's claim in the log (`$colony-<colony_id>`, below): the
arbiter of which session is the colony's canonical one, across nodes that share the log
but not a lockable colonies folder. No Starlette here; refusals are domain errors.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.core.agent_files import (
    NAME_MAX,
    AgentFileError,
    json_file_bytes,
    lock_folder,
    open_folder,
    path_too_long,
    read_at,
    shown,
    write_at,
)
from api.core.colonies import read_json, validate_agent_path, worker_configs
from eventstore import NO_STREAM, EventStore, WrongExpectedVersion
from projections.envelope import decode, new_event, payload
from projections.errors import Invalid
from projections.ids import AGENTS_STREAM, SYSTEM_STREAM_PREFIX, is_valid_id

FORK_SLUG = re.compile(r"^[a-z0-9_]+$")
MAX_DEDUP = 1000


def check_colony_id(colony_id: str) -> str:
    """hive's `_validate_colony_id` (RS:2196-2209), plus our bounds: 128 characters and
    NAME_MAX bytes (a 128-character id of 3-byte characters reached the filesystem and
    its ENAMETOOLONG was a 500), and no control characters (a newline or an escape in a
    folder name; hive's slugs never hold one)."""
    if (
        not colony_id
        or colony_id in (".", "..")
        or any(c in colony_id for c in "/\\\x00")
        or len(colony_id) > 128
        or len(colony_id.encode("utf-8", "surrogatepass")) > NAME_MAX
        or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in colony_id)
    ):
        raise Invalid("Invalid colony_id")
    return colony_id


def colony_home(roots: Iterable[Path]) -> Path:
    """Where new colonies go: the first allowed root named `colonies` (hive's
    `$HIVE_HOME/colonies`), else the first root."""
    listed = list(roots)
    if not listed:
        raise Invalid("No agents root is configured for colonies")
    for root in listed:
        if root.name == "colonies":
            return root
    return listed[0]


def open_colonies_home(roots: Iterable[Path]) -> int | None:
    """A descriptor on the colonies home folder (`colony_home`) to lock with
    `try_lock_colonies` (made first, as a new colony would make it), or None when it
    cannot be made or opened (then only this server's own lock applies)."""
    home = colony_home(roots)
    try:
        home.mkdir(parents=True, exist_ok=True)
        return os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def try_lock_colonies(home_fd: int) -> bool:
    """An exclusive flock on the colonies home folder, without waiting (the caller polls,
    so a cancelled request never leaves a thread to take the lock after it left). Held
    until `home_fd` is closed; nodes on this host open and fork colonies one at a time."""
    try:
        fcntl.flock(home_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def colony_folder(colony_id: str, roots: Iterable[Path]) -> Path:
    """The folder of `colony_id`: an existing `<root>/<id>` in any allowed root, else
    where a new one would go. Always strictly inside an allowed root."""
    check_colony_id(colony_id)
    listed = list(roots)
    for root in listed:
        candidate = root / colony_id
        if path_too_long(candidate) is None and candidate.is_dir():  # else ENAMETOOLONG
            return validate_agent_path(str(candidate), listed)
    return validate_agent_path(str(colony_home(listed) / colony_id), listed)


def colony_exists(folder: Path) -> bool:
    """hive: an existing colony has `metadata.json`; we also accept a worker config."""
    return (folder / "metadata.json").is_file() or bool(worker_configs(folder))


def read_metadata(folder: Path) -> dict[str, Any]:
    value = read_json(folder / "metadata.json", {})
    return value if isinstance(value, dict) else {}


def ensure_minimal_colony(
    folder: Path, colony_id: str, queen_name: str | None, extra: dict[str, Any] | None = None
) -> None:
    """hive's `_ensure_minimal_colony`: metadata.json `{name, created_at, queen_name?}`
    and a worker.json, so the colony can be loaded (and discovered) later. Written
    through one open descriptor on the folder (`open_folder`), as `write_metadata`;
    a file where the folder should be, or a metadata.json / worker.json that is a
    folder, a link or a special file, is a 400 naming it (it was a 500)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AgentFileError(f"{shown(folder)}: exists and is not a folder") from None
    try:
        with open_folder(folder) as folder_fd:
            lock_folder(folder_fd)  # as write_metadata: a PATCH beside is not overwritten
            metadata = folder / "metadata.json"
            if read_at(folder_fd, metadata) is None:  # refuses a link or special file
                meta: dict[str, Any] = {"name": colony_id, "created_at": time.time()}
                if queen_name:
                    meta["queen_name"] = queen_name
                meta.update(extra or {})
                write_at(folder_fd, metadata, json_file_bytes(meta))
            if not worker_configs(folder):
                worker = {
                    "name": "worker",
                    "description": "",
                    "goal": {"description": ""},
                    "tools": [],
                }
                write_at(folder_fd, folder / "worker.json", json_file_bytes(worker))
    except FileNotFoundError:
        raise AgentFileError(f"{shown(folder)}: the folder is gone") from None
    except OSError as exc:
        raise AgentFileError(f"{shown(folder)}: cannot be written ({exc.strerror})") from None


def dedup_colony_id(base: str, roots: Iterable[Path], taken: Collection[str] = ()) -> str:
    """hive's `<base>_<n>` for a colony name already taken (SM:315-331); names in
    `taken` (claimed in the log by another node) count as taken too."""
    listed = list(roots)
    candidate = base
    for n in range(2, MAX_DEDUP):
        if (
            candidate not in taken
            and not (colony_folder(candidate, listed) / "metadata.json").is_file()
        ):
            return candidate
        candidate = f"{base}_{n}"
    raise Invalid(f"Too many colonies named '{base}'")


def fork_colony_id(requested: str, roots: Iterable[Path], taken: Collection[str] = ()) -> str:
    """hive's fork: an existing colony of that name is de-duplicated to `<base>_<n>`,
    and the slug must be lower-case alphanumeric with underscores."""
    slug = requested.strip()
    if not FORK_SLUG.fullmatch(slug):
        raise Invalid("colony_id must be lowercase alphanumeric with underscores")
    return dedup_colony_id(slug, roots, taken)


# -- claims: which session is a colony's canonical one, decided by the log -----------------

CLAIM_STREAM_PREFIX = f"{SYSTEM_STREAM_PREFIX}colony-"
CLAIM_EVENT = "colony_claimed"


def claim_stream(colony_id: str) -> str:
    """`$colony-<colony_id>`: a system stream (no session projection folds it). A valid
    colony id (at most 128 characters) keeps it under the store's 256."""
    return CLAIM_STREAM_PREFIX + check_colony_id(colony_id)


@dataclass(frozen=True, slots=True)
class Claim:
    """The colony's newest claim: the session it names (None when the colony was never
    claimed, or the claim is unreadable) and the claim stream's version (0: none)."""

    session_id: str | None
    version: int
    position: int = 0  # the claim's global position


async def read_claim(store: EventStore, colony_id: str) -> Claim:
    """The newest `colony_claimed` of the colony (the one in force)."""
    newest = await store.read(claim_stream(colony_id), backwards=True, limit=1)
    if not newest:
        return Claim(None, 0)
    named = payload(decode(newest[0])).get("session_id")
    usable = isinstance(named, str) and is_valid_id(named)
    session_id = named if usable and isinstance(named, str) else None
    return Claim(session_id, newest[0].version, newest[0].position)


RELEASE_PAGE = 500


async def folder_deleted_since(store: EventStore, colony_id: str, claim: Claim) -> bool:
    """Whether a folder named `colony_id` was deleted through the API (`agent_deleted`
    in `$agents`) after the claim: the colony is gone, and opening its id again makes
    a new colony with a new session, as before claims (a folder that is simply absent
    is no sign: on another host it never existed)."""
    after = claim.position
    while True:
        page = await store.read_positions(
            AGENTS_STREAM, after_position=after, limit=RELEASE_PAGE, types=["agent_deleted"]
        )
        for event in page:
            path = payload(decode(event)).get("agent_path")
            if isinstance(path, str) and os.path.basename(path) == colony_id:
                return True
        if len(page) < RELEASE_PAGE:
            return False
        after = page[-1].position


async def is_claimed(store: EventStore, colony_id: str) -> bool:
    """Whether any node ever claimed the colony (a new colony's name is then taken)."""
    return await store.stream_info(claim_stream(colony_id)) is not None


async def try_claim(
    store: EventStore, colony_id: str, session_id: str, over: Claim, now: float
) -> bool:
    """Append a claim naming `session_id`, expecting the claim stream exactly as `over`
    read it (no stream for a first claim; its version to supersede a claim whose
    session was deleted). False when another claim came first: the caller reads it."""
    stream = claim_stream(colony_id)
    event = new_event(
        CLAIM_EVENT,
        {"colony_id": colony_id, "session_id": session_id},
        timestamp=now,
        stream_id=stream,
        colony_id=colony_id,
    )
    try:
        await store.append(stream, [event], expected=over.version or NO_STREAM)
    except WrongExpectedVersion:
        return False
    return True
