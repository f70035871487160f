"""hive's session routes (contract §3) over the event-sourced session service.

Every command is decided by a pure function on projected state and appended at
that state's version; reads come from the projection. Routes for triggers and
events/history live in their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core import colony_ids
from api.core.agent_files import AgentFileError
from api.core.colonies import read_colony, read_json, validate_agent_path, write_metadata
from api.core.queens import default_queen, find_queen, queens_dir
from api.core.service import SessionService, Unrecordable
from api.http import shapes
from api.http.body import RequestError
from api.http.contract import Body, documented, read_model
from api.http.responses import JSONResponse
from api.http.routing import path_session_id, sessions_of
from api.http.state import parts
from eventstore import InvalidEvent
from eventstore.base import encode_events
from eventstore.entropy import random_bytes
from projections import commands, views
from projections.commands import ColonyFacts, Queen, StartSession
from projections.errors import Conflict, NotFound, session_not_found
from projections.fork import Fork, check_fork, decide_fork_source
from projections.ids import is_valid_id
from projections.schedule import next_fire_fields
from projections.session import DEFAULT_QUEEN_ID, SessionState
from projections.views import NextFire

log = logging.getLogger("hivelog.sessions")

_stamp: tuple[int, str] = (-1, "")  # (whole second, its stamp): one strftime a second


def new_session_id(now: float) -> str:
    """hive's `session_YYYYMMDD_HHMMSS_<8hex>`, in UTC (hive used local time)."""
    global _stamp
    second = int(now)
    if second != _stamp[0] or now - second >= 0.999:  # (fromtimestamp may round up)
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d_%H%M%S")
        _stamp = (second, stamp) if now - second < 0.999 else (-1, "")
        return f"session_{stamp}_{random_bytes(4).hex()}"
    return f"session_{_stamp[1]}_{random_bytes(4).hex()}"


def _default_queen() -> Queen:
    """`default_queen()`, without its path walk when HIVE_HOME has no folder for that
    queen (the usual case): then it is hive's fallback under its default name. Any
    other outcome (a folder, a file, a link, an unreadable path) is left to
    `default_queen()`, which reads the profile as before."""
    home = os.path.expanduser(os.environ.get("HIVE_HOME", "~/.hive"))
    if not home.startswith("~"):
        try:
            os.stat(os.path.join(home, "agents", "queens", DEFAULT_QUEEN_ID))
        except (FileNotFoundError, NotADirectoryError):
            return NO_PROFILE_DEFAULT_QUEEN
    return default_queen()


NO_PROFILE_DEFAULT_QUEEN = Queen(
    DEFAULT_QUEEN_ID, DEFAULT_QUEEN_ID.removeprefix("queen_").replace("_", " ").title(), ""
)


def next_fire_of(request: Request) -> NextFire:
    """When each trigger fires next, by the scheduler's clock."""
    clock = parts(request).clock
    return lambda state, trigger: next_fire_fields(trigger, clock.now_ms()).get("next_fire_at")


def _queen_of(state: SessionState) -> Queen:
    return Queen(state.queen_id, state.queen_name, state.queen_title)


async def _read_colony(folder: Path, colony_id: str | None, shown: str) -> ColonyFacts:
    try:
        return await asyncio.to_thread(read_colony, folder, colony_id)
    except FileNotFoundError:
        raise NotFound(f"Agent not found: {shown}") from None


class CreateSession(Body):
    """POST /api/sessions. Empty strings count as absent, as in hive."""

    session_id: str | None = None
    queen_resume_from: str | None = None
    queen_name: str | None = None
    agent_path: str | None = None
    agent_id: str | None = None
    model: str | None = None
    initial_prompt: str | None = None
    initial_phase: str | None = None
    worker_name: str | None = None  # accepted and ignored (hive's branch was broken)
    colony_id: str | None = None  # hive 54fd8db: the colony by id (wins over agent_path)
    source_session_id: str | None = None  # hive 54fd8db: with colony_id, fork that DM


def _given(value: str | None) -> str | None:
    return value or None


def _given_id(value: str | None, key: str) -> str | None:
    if value and not is_valid_id(value):
        raise RequestError(400, f"Invalid {key} '{value[:200]}'")
    return value or None


@documented(
    "Create a session, resume a cold one, or return a live one",
    body=CreateSession,
    body_required=False,
    status=201,
    response=shapes.LiveSession,
    errors=(400, 404, 409, 413, 415),
)
async def create_session(request: Request) -> Response:
    """POST /api/sessions: create, resume a cold session, or return a live one (201)."""
    service = sessions_of(request)
    body = await read_model(request, CreateSession, optional=True)
    initial_phase = commands.check_phase(body.initial_phase)
    queen_name = _given(body.queen_name)
    explicit_queen: Queen | None = None
    if queen_name is not None:
        explicit_queen = find_queen(queen_name)
        if explicit_queen is None:
            raise NotFound(f"Queen '{queen_name}' not found")
    colony_id = _given(body.colony_id)
    if colony_id is not None:
        return await _create_with_colony_id(request, body, colony_id, explicit_queen)
    raw_path = _given(body.agent_path)
    folder = None
    if raw_path is not None:
        folder = validate_agent_path(raw_path, parts(request).settings.agents_roots)
    session_id = _given_id(body.session_id, "session_id")
    resume_from = _given_id(body.queen_resume_from, "queen_resume_from")
    agent_id = _given_id(body.agent_id, "agent_id")
    model = _given(body.model)
    initial_prompt = _given(body.initial_prompt)

    colony: ColonyFacts | None = None
    meta_queen: Queen | None = None
    if folder is not None:
        meta = await asyncio.to_thread(read_json, folder / "metadata.json", {})
        meta = meta if isinstance(meta, dict) else {}
        forked = meta.get("queen_session_id")
        # hive: the colony's queen_session_id is authoritative (the frontend may have
        # picked the source DM, not the fork); applied only when the log knows that id.
        if isinstance(forked, str) and service.get(forked) is not None and not session_id:
            resume_from = forked
        if isinstance(meta.get("queen_name"), str):
            meta_queen = find_queen(meta["queen_name"])
        colony = await _read_colony(folder, agent_id, str(raw_path))

    now = time.time()
    resume = resume_from is not None
    target = resume_from or session_id or new_session_id(now)
    if not resume and service.is_deleted(target):
        raise Conflict(f"Session '{target}' was deleted; its id cannot be reused")
    fallback = meta_queen or _default_queen()

    def decide(state: SessionState | None) -> list[Any]:
        queen = explicit_queen or (_queen_of(state) if state else None) or fallback
        command = StartSession(
            session_id=target,
            now=now,
            queen=queen,
            resume=resume,
            initial_phase=initial_phase,
            colony=colony,
            model=model,
            initial_prompt=initial_prompt,
            runner_node=parts(request).settings.node_id,
        )
        return commands.decide_start(state, command)

    state = await service.execute(target, decide)
    return JSONResponse(views.live_dict(state, time.time()), status_code=201)


def _newest_of_colony(service: SessionService, colony_id: str) -> str | None:
    """The newest session in the log bound to `colony_id` (hive's legacy fallback)."""
    bound = [
        s
        for s in service.catalogue.sessions.values()
        if s.colony is not None and s.colony.colony_id == colony_id
    ]
    if not bound:
        return None
    return max(bound, key=lambda s: (s.created_at, s.session_id)).session_id


def _usable(service: SessionService, session_id: object) -> str | None:
    if not isinstance(session_id, str) or not is_valid_id(session_id):
        return None
    return None if service.is_deleted(session_id) else session_id


def _node_lock() -> asyncio.Lock:
    """One asyncio lock per event loop (one per server), for `colony_lock`."""
    loop = asyncio.get_running_loop()
    lock = _colony_locks.get(loop)
    if lock is None:
        lock = _colony_locks[loop] = asyncio.Lock()
    return lock


_colony_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
LOCK_POLL_SECONDS = 0.01
COLONY_LOCK_SECONDS = 10.0  # an open or fork takes milliseconds; past this, 409


@contextlib.asynccontextmanager
async def colony_lock(request: Request) -> AsyncIterator[None]:
    """Opening and forking colonies by id, one at a time: each reads the folder, writes
    it, appends, then writes `queen_session_id` back. Run side by side, four requests
    for one new colony made up to four "canonical" sessions (or a 404 from a
    half-written folder), and forks of one DM that lost the race had already written
    their colony folder; two nodes on one log did the same (7 of 8 tries). So: this
    server's asyncio lock, then an flock on the colonies home folder (the nodes of one
    host), then the projection caught up with the log's head, so the checks see what
    another node appended before it let go. Hosts that share the log but no lockable
    folder still race past these locks; the colony's claim in the log settles that race
    (`_claimed_session`). The locks stay: they keep one host's folder writes (new
    colonies, fork names, `queen_session_id`) one at a time, and spare its own opens a
    lost claim and a re-read."""
    async with _node_lock():
        home_fd = colony_ids.open_colonies_home(parts(request).settings.agents_roots)
        try:
            # polled, not waited on in a thread: a cancelled request leaves nothing behind
            # that could take the lock later and hold it for good (another node's flock
            # has no asyncio event to wait on)
            locked = home_fd is None
            deadline = time.monotonic() + COLONY_LOCK_SECONDS
            while not locked:
                assert home_fd is not None
                locked = colony_ids.try_lock_colonies(home_fd)
                if not locked:
                    if time.monotonic() >= deadline:  # a hung holder: answer, do not hang
                        raise Conflict("Colonies are busy (another open holds them); try again")
                    await asyncio.sleep(LOCK_POLL_SECONDS)
            await sessions_of(request).catch_up()
            yield
        finally:
            if home_fd is not None:
                os.close(home_fd)


async def _create_with_colony_id(
    request: Request, body: CreateSession, colony_id: str, explicit_queen: Queen | None
) -> Response:
    """hive 54fd8db's POST /api/sessions `{colony_id}`: the fork when
    `source_session_id` is given, else the colony's canonical session (created,
    resumed or returned live), a new colony written as hive's minimal one. Every id
    is checked before the folder is written (a bad `session_id` was a 400 that had
    already written a new colony)."""
    colony_ids.check_colony_id(colony_id)
    source = _given_id(body.source_session_id, "source_session_id")
    async with colony_lock(request):
        if source is not None:
            return await _fork(request, body, colony_id, source, explicit_queen)
        resume_from = _given_id(body.queen_resume_from, "queen_resume_from")
        session_id = _given_id(body.session_id, "session_id")
        return await _open_colony(request, body, colony_id, explicit_queen, resume_from, session_id)


async def _open_colony(
    request: Request,
    body: CreateSession,
    colony_id: str,
    explicit_queen: Queen | None,
    resume_from: str | None,
    session_id: str | None,
) -> Response:
    """The colony's canonical session (`_create_with_colony_id`, under `colony_lock`).
    Every check that can refuse (folder, ids, queen) runs before the claim is appended,
    so a 4xx appends nothing."""
    service = sessions_of(request)
    roots = parts(request).settings.agents_roots
    folder = await asyncio.to_thread(colony_ids.colony_folder, colony_id, roots)
    existed = await asyncio.to_thread(colony_ids.colony_exists, folder)
    if _given(body.initial_prompt) is not None and (
        existed or (await _claim_in_force(service, colony_id))[1] is not None
    ):
        # hive (SM:680-695): a new colony with a first prompt reuses only a scaffolded
        # colony of that name; otherwise it gets a fresh, de-duplicated id. A colony
        # another host holds (claimed in the log, no folder here) is taken too.
        meta = await asyncio.to_thread(colony_ids.read_metadata, folder) if existed else {}
        if not meta.get("scaffolded"):
            colony_id = await _unclaimed(
                service, lambda taken: colony_ids.dedup_colony_id(colony_id, roots, taken)
            )
            folder = await asyncio.to_thread(colony_ids.colony_folder, colony_id, roots)
            existed = False
    queen_name = _given(body.queen_name)
    if not existed:
        requested = resume_from or session_id  # a new colony's session id (below)
        if requested is not None and service.is_deleted(requested):
            raise Conflict(f"Session '{requested}' was deleted; its id cannot be reused")
        await asyncio.to_thread(colony_ids.ensure_minimal_colony, folder, colony_id, queen_name)
    meta = await asyncio.to_thread(colony_ids.read_metadata, folder)
    meta_queen = find_queen(meta["queen_name"]) if isinstance(meta.get("queen_name"), str) else None
    colony = await _read_colony(folder, colony_id, colony_id)

    now = time.time()
    model = _given(body.model)
    # A client that names colonies by id speaks 54fd8db, whose frontend knows only the
    # phases `colony` and `independent`: record those names for it (3c390c9e clients,
    # which send agent_path, keep getting `working` / `reviewing`).
    initial_phase = commands.check_phase(body.initial_phase) or "colony"

    def start(target: str) -> Callable[[SessionState | None], list[Any]]:
        def decide(state: SessionState | None) -> list[Any]:
            queen = explicit_queen or (_queen_of(state) if state else None)
            command = StartSession(
                session_id=target,
                now=now,
                queen=queen or meta_queen or default_queen(),
                resume=state is not None,
                initial_phase=initial_phase,
                colony=None if _runs_colony(state, colony_id) else colony,
                model=model,
                initial_prompt=_given(body.initial_prompt),
                runner_node=parts(request).settings.node_id,
            )
            return commands.decide_start(state, command)

        return decide

    def pick() -> str:
        """This node's choice when the colony has no claim in force (hive's rules),
        refused here (before it is claimed) when starting it would be refused."""
        target = _usable(service, meta.get("queen_session_id"))
        if target is None and existed:
            resumed = service.get(resume_from) if resume_from else None
            if resumed is not None and resumed.colony and resumed.colony.colony_id == colony_id:
                target = resume_from
            else:
                target = _newest_of_colony(service, colony_id)
        if target is None:  # a new colony (or one never opened): hive's id rule (SM:708)
            target = resume_from or session_id or new_session_id(time.time())
        if service.is_deleted(target):
            raise Conflict(f"Session '{target}' was deleted; its id cannot be reused")
        start(target)(service.get(target))  # e.g. a live DM named as the new colony's id
        return target

    target = await _claimed_session(service, colony_id, pick)
    decide = start(target)
    state = await service.execute(target, decide)
    if meta.get("queen_session_id") != target:
        await _remember_session(folder, target)
    return JSONResponse(views.live_dict(state, time.time()), status_code=201)


def _runs_colony(state: SessionState | None, colony_id: str) -> bool:
    """A live session with this colony id loaded: returned as it is, whichever node's
    folder it was loaded from (the colonies folders of two hosts differ in path, and
    `decide_start` took the other path for another colony: a 409)."""
    return (
        state is not None
        and state.live
        and state.colony is not None
        and state.colony.colony_id == colony_id
    )


NO_CLAIM = colony_ids.Claim(None, 0)
CLAIM_ATTEMPTS = 8  # each lost claim means another node's claim is now in force
CLAIM_WAIT_SECONDS = 5.0  # for the claimant's session to show in this node's projection


async def _claimed_session(service: SessionService, colony_id: str, pick: Callable[[], str]) -> str:
    """The colony's canonical session id, with the log as the arbiter across nodes.

    The claim in force (the newest `colony_claimed` in `$colony-<colony_id>`) names it,
    unless that session was deleted. Otherwise this node's `pick()` is claimed with
    the claim stream's version as read (none yet: `NO_STREAM`), so of two nodes
    claiming at once exactly one append succeeds; the other reads the winner's claim
    and answers with its session. The per-host `colony_lock` keeps this node's own
    opens from racing for the claim; the claim settles the race between hosts."""
    for _attempt in range(CLAIM_ATTEMPTS):
        claim, named = await _claim_in_force(service, colony_id)
        if named is not None:
            await _await_session(service, named)
            return named
        target = pick()
        if await colony_ids.try_claim(service.store, colony_id, target, claim, time.time()):
            return target
    raise Conflict(f"Colony '{colony_id}' is busy (claimed elsewhere); try again")


async def _claim_in_force(
    service: SessionService, colony_id: str
) -> tuple[colony_ids.Claim, str | None]:
    """The colony's newest claim, and the session it names while it is in force: not
    when that session was deleted, nor when the colony's folder was deleted through
    the API after the claim (either way the next open claims the colony anew)."""
    claim = await colony_ids.read_claim(service.store, colony_id)
    named = claim.session_id
    if named is None or service.is_deleted(named):
        return claim, None
    if await colony_ids.folder_deleted_since(service.store, colony_id, claim):
        return claim, None
    return claim, named


async def _await_session(service: SessionService, session_id: str) -> None:
    """Wait, bounded, for a claimed session to show in this projection: the claimant
    appends it right after its claim. Past the bound (the claimant died between its
    claim and its session) the caller starts the session under the claimed id itself;
    the session stream's expected version lets exactly one start create it."""
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while service.get(session_id) is None and not service.is_deleted(session_id):
        await service.catch_up()
        if service.get(session_id) is not None or time.monotonic() >= deadline:
            return
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def _unclaimed(service: SessionService, pick: Callable[[frozenset[str]], str]) -> str:
    """A new colony's name: `pick(taken)` (a de-duplicating choice among this node's
    folders), also skipping names another node claimed in the log. Bounded: each turn
    adds a name to `taken`, and the pick refuses past `MAX_DEDUP` names."""
    taken: frozenset[str] = frozenset()
    while True:
        candidate = await asyncio.to_thread(pick, taken)
        if not await colony_ids.is_claimed(service.store, candidate):
            return candidate
        taken = taken | {candidate}


async def _remember_session(folder: Path, session_id: str) -> None:
    """Write the colony's `queen_session_id` after the session is appended. A refusal
    here (metadata.json at its size limit, a folder swapped or gone) is logged, not
    answered: the session exists, and the next open finds it in the log
    (`_newest_of_colony`); a 400 here reported a failure for a session that had been
    created."""
    try:
        await asyncio.to_thread(write_metadata, folder, {"queen_session_id": session_id})
    except AgentFileError as exc:
        log.warning("colony %s: queen_session_id not written: %s", folder, exc.message)


async def _fork(
    request: Request,
    body: CreateSession,
    requested: str,
    source_id: str,
    explicit_queen: Queen | None,
) -> Response:
    """hive 54fd8db's fork: lock the source DM with `colony_created`, then a new
    session bound to the new colony, recording `source_session_id` (201). The new
    colony's name skips names claimed by other nodes, and is claimed (no claim stream
    yet) before the source is locked: a node that forked to the same name first wins,
    and this fork is a 409 with nothing appended."""
    service = sessions_of(request)
    roots = parts(request).settings.agents_roots
    colony_id = await _unclaimed(
        service, lambda taken: colony_ids.fork_colony_id(requested, roots, taken)
    )
    folder = await asyncio.to_thread(colony_ids.colony_folder, colony_id, roots)
    now = time.time()
    new_id = new_session_id(now)
    cmd = Fork(source_id, colony_id, str(folder), new_id, now)
    source = check_fork(service.get(source_id), cmd)  # refuse before writing anything
    initial_phase = commands.check_phase(body.initial_phase) or "colony"
    queen = explicit_queen or _queen_of(source)
    command = StartSession(
        session_id=new_id,
        now=now,
        queen=queen,
        initial_phase=initial_phase,
        model=_given(body.model),
        runner_node=parts(request).settings.node_id,
        source_session_id=source_id,
    )
    # The new session's events must be recordable before the source is locked: a
    # `model` near the body limit made its `session_created` too large for the store
    # after `colony_created` had locked the DM for good (every retry then a 409).
    try:
        encode_events(commands.decide_start(None, command))
    except InvalidEvent as exc:
        raise Unrecordable(exc) from None
    extra = {"queen_session_id": new_id, "source_session_id": source_id}
    await asyncio.to_thread(
        colony_ids.ensure_minimal_colony, folder, colony_id, queen.queen_id, extra
    )
    colony = await _read_colony(folder, colony_id, colony_id)
    if not await colony_ids.try_claim(service.store, colony_id, new_id, NO_CLAIM, now):
        raise Conflict(f"Colony '{colony_id}' was just created on another node; try again")
    await service.execute(source_id, lambda st: decide_fork_source(st, cmd))
    command = dataclasses.replace(command, colony=colony)
    state = await service.execute(new_id, lambda st: commands.decide_start(st, command))
    return JSONResponse(views.live_dict(state, time.time()), status_code=201)


@documented("Live sessions in creation order", response=shapes.LiveSessions)
async def list_sessions(request: Request) -> Response:
    """GET /api/sessions: live sessions in creation order."""
    service = sessions_of(request)
    now = time.time()
    sessions = [views.live_dict(s, now) for s in service.catalogue.sessions.values() if s.live]
    return JSONResponse({"sessions": sessions})


@documented("Every session on record, newest activity first", response=shapes.HistorySessions)
async def list_history(request: Request) -> Response:
    """GET /api/sessions/history, as hive 54fd8db (SM:2080-2118; it wins over
    3c390c9e here): queen DMs only (sessions with a colony are listed under
    /api/colonies/{id}/sessions), newest session id first."""
    service = sessions_of(request)
    states = sorted(
        (s for s in service.catalogue.sessions.values() if s.colony is None),
        key=lambda s: s.session_id,
        reverse=True,
    )
    return JSONResponse({"sessions": [views.colony_row(s, overlay=True) for s in states]})


@documented(
    "Delete a session and erase its events for good (idempotent)",
    response=shapes.Deleted,
    errors=(400,),
)
async def delete_history(request: Request) -> Response:
    """DELETE /api/sessions/history/{id}: erase the session's events for good (idempotent)."""
    session_id = path_session_id(request)
    try:
        await sessions_of(request).delete_session(session_id, time.time())
    except OSError as exc:
        return JSONResponse({"error": f"Failed to delete session: {exc}"}, status_code=500)
    return JSONResponse({"deleted": session_id})


def _known(service: SessionService, session_id: str) -> SessionState:
    state = service.get(session_id)
    if state is None:
        raise session_not_found(session_id)
    return state


@documented(
    "A live session's detail, or a cold session's info",
    response=shapes.SessionInfo,
    errors=(400, 404),
)
async def get_session(request: Request) -> Response:
    """GET /api/sessions/{id}: LiveSessionDetail when live, cold info when known, else 404."""
    session_id = path_session_id(request)
    state = _known(sessions_of(request), session_id)
    if not state.live:
        return JSONResponse(views.cold_info(state))
    return JSONResponse(views.detail_dict(state, time.time(), next_fire_of(request)))


@documented("Stop a live session", response=shapes.Stopped, errors=(400, 404, 409))
async def stop_session(request: Request) -> Response:
    """DELETE /api/sessions/{id}: live -> cold; the session stays in the log."""
    session_id = path_session_id(request)
    now = time.time()
    await sessions_of(request).execute(
        session_id, lambda s: commands.decide_stop(s, session_id, now)
    )
    return JSONResponse({"session_id": session_id, "stopped": True})


class LoadColony(Body):
    """POST /api/sessions/{id}/colony. `agent_path` is required (hive's own check and
    text: `agent_path is required`, also for "" and null)."""

    agent_path: str | None = None
    colony_id: str | None = None
    model: str | None = None  # accepted, checked, and not used (as in hive)


@documented(
    "Load a colony into the session",
    body=LoadColony,
    response=shapes.LiveSession,
    errors=(400, 404, 409, 413, 415),
)
async def load_colony(request: Request) -> Response:
    """POST /api/sessions/{id}/colony: 3c390c9e's `{agent_path, colony_id?, model?}` or
    hive 54fd8db's `{colony_id, model?}` (the colony by id, inside the allowed roots)."""
    session_id = path_session_id(request)
    service = sessions_of(request)
    # a refusal decided on a projection caught up with the head: another node's create
    # may not be folded here yet (a 404 in 12 of 30 loads right after it)
    await service.confirm(session_id, lambda s: commands.require_live(s, session_id))
    body = await read_model(request, LoadColony)
    roots = parts(request).settings.agents_roots
    if not body.agent_path:
        if not body.colony_id:
            raise RequestError(400, "colony_id is required")  # hive 54fd8db's text
        given = body.colony_id
        colony_ids.check_colony_id(given)
        folder = await asyncio.to_thread(colony_ids.colony_folder, given, roots)
        try:
            facts = await asyncio.to_thread(read_colony, folder, given)
        except FileNotFoundError:
            raise NotFound(f"Colony not found: {given}") from None
    else:
        folder = validate_agent_path(body.agent_path, roots)
        colony_id = _given_id(body.colony_id, "colony_id")
        facts = await _read_colony(folder, colony_id, str(folder))
    now = time.time()
    state = await service.execute(
        session_id, lambda s: commands.decide_load_colony(s, session_id, facts, now)
    )
    return JSONResponse(views.live_dict(state, time.time()))


@documented(
    "Unload the session's colony (its triggers first)",
    response=shapes.ColonyUnloaded,
    errors=(400, 404, 409),
)
async def unload_colony(request: Request) -> Response:
    """DELETE /api/sessions/{id}/colony: remove its triggers, then the colony."""
    session_id = path_session_id(request)
    now = time.time()
    await sessions_of(request).execute(
        session_id, lambda s: commands.decide_unload_colony(s, session_id, now)
    )
    return JSONResponse({"session_id": session_id, "colony_unloaded": True})


@documented("The session's folder path (creates nothing)", response=shapes.Revealed)
async def reveal(request: Request) -> Response:
    """POST /api/sessions/{id}/reveal: hive's session folder path. A server opens no
    file manager and creates nothing; the path is where hive keeps that session."""
    session_id = path_session_id(request)
    state = _known(sessions_of(request), session_id)
    return JSONResponse({"path": str(queens_dir() / state.queen_id / "sessions" / session_id)})


def _live(request: Request) -> SessionState:
    session_id = path_session_id(request)
    return commands.require_live(sessions_of(request).get(session_id), session_id)


@documented("Runtime stats ({} with no colony)", errors=(400, 404, 409))
async def stats(request: Request) -> Response:
    """GET /api/sessions/{id}/stats: hive's runtime stats shape, `{}` with no colony."""
    return JSONResponse(views.stats_dict(_live(request)))


@documented(
    "Entry points with next-fire times", response=shapes.EntryPoints, errors=(400, 404, 409)
)
async def entry_points(request: Request) -> Response:
    """GET /api/sessions/{id}/entry-points."""
    state = _live(request)
    points = views.entry_points(state, time.time(), next_fire_of(request))
    return JSONResponse({"entry_points": points})


@documented("The session's colony ids", response=shapes.Colonies, errors=(400, 404, 409))
async def colonies(request: Request) -> Response:
    """GET /api/sessions/{id}/colonies: `[colony_id]`, or `[]` with no colony."""
    state = _live(request)
    return JSONResponse({"colonies": [state.colony.colony_id] if state.colony else []})


routes = [
    Route("/api/sessions", create_session, methods=["POST"]),
    Route("/api/sessions", list_sessions, methods=["GET"]),
    Route("/api/sessions/history", list_history, methods=["GET"]),
    Route("/api/sessions/history/{session_id}", delete_history, methods=["DELETE"]),
    Route("/api/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/api/sessions/{session_id}", stop_session, methods=["DELETE"]),
    Route("/api/sessions/{session_id}/colony", load_colony, methods=["POST"]),
    Route("/api/sessions/{session_id}/colony", unload_colony, methods=["DELETE"]),
    Route("/api/sessions/{session_id}/reveal", reveal, methods=["POST"]),
    Route("/api/sessions/{session_id}/stats", stats, methods=["GET"]),
    Route("/api/sessions/{session_id}/entry-points", entry_points, methods=["GET"]),
    Route("/api/sessions/{session_id}/colonies", colonies, methods=["GET"]),
]
