"""The command service: decide on projected state, append with its version, fold.

One follower task reads the global log after the projection's position and folds
every event into the catalogue, in log order, whoever appended it. `execute`
appends with the expected version its decision was made on, then waits until the
follower has folded its own events, so a response always reflects the command.
The catalogue is checkpointed (state and position in one row) so a restart
folds only the events after the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar, cast

import orjson

from api.core.supervisor import RestartPolicy, Supervisor
from api.core.tasks import stop_task
from eventstore import (
    NO_STREAM,
    AppendResult,
    EventStore,
    InvalidEvent,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
    StreamDeleted,
    WrongExpectedVersion,
)
from eventstore.base import new_event_id, wait_for_ticket
from projections import catalogue as cat
from projections.catalogue import SESSIONS_STREAM, CatalogueState
from projections.envelope import new_event
from projections.errors import Conflict, DomainError, Invalid, NotFound
from projections.session import SessionState

log = logging.getLogger("hivelog.sessions")
T = TypeVar("T")

Decide = Callable[[SessionState | None], Sequence[NewEvent]]
Check = Callable[[SessionState | None], T]
Listener = Callable[[RecordedEvent], None]

MAX_ATTEMPTS = 8
# Loop turns the follower leaves acknowledged appenders after a commit, so they fold
# their own events first (future resolved, then the task's wake-up: two; one spare).
FOLLOW_YIELDS = 3
READ_BATCH = 2000
CHECKPOINT_EVERY_EVENTS = 5000
CHECKPOINT_EVERY_SECONDS = 5.0
CHECKPOINT_DURING_START = 200_000
# Checkpoints take at most ~1/CHECKPOINT_DUTY of the time: a 10k-session catalogue takes
# ~0.5 s to encode and write, and the write holds the one writer thread, so timer
# fires queued behind it run late (measured: p99 2.3 s with 100k timers at 5 s cadence).
CHECKPOINT_DUTY = 20
ENCODE_SLICE_SECONDS = 0.002  # checkpoint encoding runs on the loop in slices this long
# Restart backoff: the follower is required (every response waits for it), so it
# retries within 2 s at most; a failing checkpoint (disk full) waits 5 s, then up to
# a minute, rather than re-encoding and rewriting the whole catalogue twice a second.
FOLLOWER_RESTARTS = RestartPolicy(max_seconds=2.0)
CHECKPOINT_RESTARTS = RestartPolicy(initial_seconds=5.0, max_seconds=60.0)


def _with_ids(events: Sequence[NewEvent]) -> list[NewEvent]:
    """Give each event its id before appending, so a locally folded copy carries it
    (NewEvent built directly: `dataclasses.replace` costs several times more)."""
    return [
        e if e.event_id is not None else NewEvent(e.type, e.data, e.metadata, new_event_id())
        for e in events
    ]


class Unrecordable(InvalidEvent, Invalid):
    """The store refused a command's events (one over 1 MiB: a body just under the
    1 MiB limit with a long `initial_prompt`, `model`, or trigger `name` and `task`).
    Still an `InvalidEvent`, which the scheduler and the webhook route handle
    themselves; and an `Invalid`, so an HTTP command answers 400 with hive's
    `{"error"}` body instead of a 500 (nothing was appended)."""

    def __init__(self, cause: InvalidEvent) -> None:
        Invalid.__init__(self, f"Too large to record: {cause}")


class _Turn:
    """One session's lock and how many commands hold or await it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class SessionService:
    """Live and cold sessions, kept up to date from the log; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        *,
        checkpoint_name: str = cat.CHECKPOINT_NAME,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.store = store
        self.supervisor = supervisor or Supervisor()
        self.catalogue = CatalogueState()
        self.listeners: list[Listener] = []
        self.checkpoint_name = checkpoint_name
        self._changed = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._saved_position = 0
        self._saved_at = time.monotonic()
        self._save_cost = 0.0  # seconds the last checkpoint took (encode and write)
        # each session's last checkpoint bytes, by the stream version they encode
        self._encoded: dict[str, tuple[int, bytes]] = {}
        self._stopping = False
        # commands on one session take turns in this process (see `execute`); an entry
        # lives only while a command holds or awaits it
        self._turns: dict[str, _Turn] = {}
        self.restored_from_checkpoint = False
        self.events_folded_at_start = 0

    # ---- reading the projection ---------------------------------------------------

    @property
    def position(self) -> int:
        """The last global position folded into the catalogue."""
        return self.catalogue.position

    def get(self, session_id: str) -> SessionState | None:
        return self.catalogue.sessions.get(session_id)

    def live_ids(self) -> list[str]:
        return self.catalogue.live_ids()

    def is_deleted(self, session_id: str) -> bool:
        return session_id in self.catalogue.deleted

    # ---- start and stop -----------------------------------------------------------

    async def start(self) -> None:
        """Load the checkpoint, fold what came after it, finish erasures, then follow."""
        checkpoint = await self.store.load_checkpoint(self.checkpoint_name)
        if checkpoint is not None:
            state = cat.decode_state(checkpoint.state)
            if state is not None and state.position == checkpoint.position:
                self.catalogue = state
                self.restored_from_checkpoint = True
            else:
                log.warning("checkpoint %s unreadable; rebuilding from 0", self.checkpoint_name)
        self._saved_position = self.catalogue.position
        start_position = self.catalogue.position
        while await self._fold_batch():
            if self.catalogue.position - self._saved_position >= CHECKPOINT_DURING_START:
                await self._save_at_start()  # a crash during a long first fold resumes here
        self.events_folded_at_start = self.catalogue.position - start_position
        for session_id in list(self.catalogue.unerased):
            await self._erase(session_id)
        if self.catalogue.position != self._saved_position:
            await self._save_at_start()
        self._follower = self.supervisor.spawn(
            "sessions_follower", self._follow, required=True, policy=FOLLOWER_RESTARTS
        )
        self._checkpointer = self.supervisor.spawn(
            "checkpointer", self._checkpoint_loop, policy=CHECKPOINT_RESTARTS
        )

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._follower, self._checkpointer):
            if task is not None:
                await stop_task(task)
        self._follower = self._checkpointer = None
        with contextlib.suppress(Exception):
            await self._fold_batch()
        try:
            await self.save_checkpoint()
        except Exception as exc:  # the log has everything; the next start folds from further back
            log.warning("final sessions checkpoint not saved: %s", exc)

    # ---- following the log --------------------------------------------------------

    async def _fold_batch(self) -> bool:
        events = await self.store.read_all(after_position=self.catalogue.position, limit=READ_BATCH)
        return self._fold(events)

    def _fold(self, events: Sequence[RecordedEvent]) -> bool:
        """Apply events in log order, each exactly once, and wake whoever waits."""
        folded = False
        for event in events:
            if event.position <= self.catalogue.position:
                continue  # already folded (our own append, folded when acknowledged)
            cat.apply(self.catalogue, event)
            folded = True
            self._tell(event)
        if folded:
            self._wake_waiters()
        return bool(events)

    def _tell(self, event: RecordedEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("session listener failed on %s", event.type)

    def _fold_own(self, stream_id: str, events: Sequence[NewEvent], result: AppendResult) -> None:
        """Fold an acknowledged append at once when it is the very next thing in the log.

        An append's events take contiguous positions ending at `last_position` (both
        backends), so when the projection stands right before them they are built
        from what was sent, saving the follower's read-back; otherwise the follower
        folds them in order as usual. Listeners then see `recorded_at_us` as this
        process's clock at acknowledgement, not the stored commit time (folds use the
        envelope timestamp, so projected state is identical either way). The append's
        events are folded as one run (`catalogue.apply_run`: one state copy per append,
        not per event), then each is told to the listeners: a listener sees the
        state after the whole append, which readers of the log cannot tell apart
        (an append commits atomically).
        """
        first = result.last_position - len(events) + 1
        if first != self.catalogue.position + 1 or result.first_version + len(events) - 1 != (
            result.last_version
        ):
            return
        now_us = time.time_ns() // 1000
        recorded = [
            RecordedEvent(
                stream_id,
                result.first_version + i,
                first + i,
                str(event.event_id),
                event.type,
                orjson.dumps(event.data),
                None,
                now_us,
            )
            for i, event in enumerate(events)
        ]
        cat.apply_run(self.catalogue, recorded)
        for event in recorded:
            self._tell(event)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        """Wake every `wait_for` (each re-checks the position), and arm a fresh event."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _follow(self) -> None:
        """Fold until stopped; a failed read raises to the supervisor (logged, restarted).

        After a commit's doorbell the follower first lets the event loop run the
        appenders the commit acknowledged (FOLLOW_YIELDS turns: their futures resolve
        on the turn the doorbell rings): `execute` folds its own events from what it
        sent (`_fold_own`), so the read that follows finds only what others appended,
        usually nothing, instead of reading every event back (measured at 1,000 timer
        fires/s: the log reader returned every fired event and the follower read twice
        per commit). When the doorbell then says the log holds nothing past what is
        folded (`Doorbell.nothing_new`: every commit it heard of is placed, at or
        below the catalogue's position), the read is skipped too: a commit of
        creates or fires is then folded with no read at all. Polls always read."""
        bell = self.store.doorbell
        while not self._stopping:
            ticket, unplaced = bell.ticket(), bell.unplaced
            if await self._fold_batch():
                continue
            while not self._stopping:
                await wait_for_ticket(ticket, self.store.poll_seconds)
                for _ in range(FOLLOW_YIELDS):
                    await asyncio.sleep(0)
                if not ticket.is_set() or not bell.nothing_new(self.catalogue.position, unplaced):
                    break  # a poll, or a commit not (yet) folded: read
                ticket = bell.ticket()

    async def wait_for(self, position: int, within: float = 30.0) -> None:
        """Return once the catalogue has folded `position` (or raise TimeoutError)."""
        deadline = time.monotonic() + within
        while self.catalogue.position < position:
            if self._follower is None:  # not started (tools, tests): fold inline
                if not await self._fold_batch():
                    raise TimeoutError(f"position {position} is not in the log")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"projection did not reach position {position}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await changed.wait()

    # ---- commands -----------------------------------------------------------------

    async def execute(self, session_id: str, decide: Decide) -> SessionState:
        """Decide on the projected state, append at its version, retry on conflict.

        Commands on one session take turns in this process: run side by side, all but
        one of them failed their append and retried, and past MAX_ATTEMPTS a command
        was refused 409 "busy" (5 of 20 concurrent PATCHes of one trigger on one
        node). Other nodes' commands still meet ours on the expected version.

        A decision that appends nothing (a refusal, or "nothing to do") is trusted
        only on a projection that has caught up with the log's head: another node's
        create, resume or new trigger may not be folded here yet (a stop on node B
        right after a create on node A was a 404 in 10 of 30 tries).
        """
        turn = self._take_turn(session_id)
        try:
            async with turn.lock:
                return await self._execute(session_id, decide)
        finally:
            self._leave_turn(session_id, turn)

    def _take_turn(self, session_id: str) -> _Turn:
        turn = self._turns.get(session_id)
        if turn is None:
            turn = self._turns[session_id] = _Turn()
        turn.users += 1
        return turn

    def _leave_turn(self, session_id: str, turn: _Turn) -> None:
        turn.users -= 1
        if turn.users == 0 and self._turns.get(session_id) is turn:
            del self._turns[session_id]

    async def _execute(self, session_id: str, decide: Decide) -> SessionState:
        fresh = False  # whether this command has caught up with the head already
        for _attempt in range(MAX_ATTEMPTS):
            if self.is_deleted(session_id):
                raise NotFound(f"Session '{session_id}' not found")
            state = self.get(session_id)
            try:
                events = list(decide(state))
            except DomainError:
                if fresh or not await self.catch_up():
                    raise
                fresh = True
                continue
            if not events:
                if not fresh and await self.catch_up():
                    fresh = True
                    continue
                if state is None:
                    raise NotFound(f"Session '{session_id}' not found")
                return state
            expected = state.version if state is not None else NO_STREAM
            events = _with_ids(events)
            try:
                result = await self.store.append(session_id, events, expected=expected)
            except WrongExpectedVersion:
                await self.catch_up()
                continue
            except StreamDeleted:
                raise NotFound(f"Session '{session_id}' not found") from None
            except InvalidEvent as exc:
                raise Unrecordable(exc) from exc
            if all(isinstance(e.data, dict) and e.metadata is None for e in events):
                self._fold_own(session_id, events, result)
            await self.wait_for(result.last_position)
            new_state = self.get(session_id)
            if new_state is None:  # deleted between our append and the fold
                raise NotFound(f"Session '{session_id}' not found")
            return new_state
        raise Conflict(f"Session '{session_id}' is busy; try again")

    async def catch_up(self) -> bool:
        """Fold up to the log's current head; whether the projection moved meanwhile
        (by this fold or the follower's, during the head query)."""
        seen = self.catalogue.position
        await self.wait_for(await self.store.head_position())
        return self.catalogue.position > seen

    async def confirm(self, session_id: str, check: Check[T]) -> T:
        """`check(state)` for a route's early refusal (before its body is read), and
        like `execute`, a refusal only on a projection caught up with the head."""
        try:
            return check(self.get(session_id))
        except DomainError:
            if not await self.catch_up():
                raise
        return check(self.get(session_id))

    async def delete_session(self, session_id: str, now: float) -> bool:
        """Erase a session: record the deletion, erase its events, record the erase.

        Returns whether there was anything to delete. The `session_deleted` marker is
        written first, so a crash before the erase is finished on the next start.
        Takes the session's turn (concurrent deletes each wrote a marker and an erase
        record) and catches up with the head before saying there is nothing to delete
        (a session another node had just created was answered "deleted" and kept).
        """
        turn = self._take_turn(session_id)
        try:
            async with turn.lock:
                if not self._deletable(session_id):
                    await self.catch_up()
                    if not self._deletable(session_id):
                        return False
                if self.get(session_id) is not None:
                    marker = new_event(
                        "session_deleted",
                        {"session_id": session_id},
                        timestamp=now,
                        stream_id="$sessions",
                    )
                    result = await self.store.append(SESSIONS_STREAM, [marker])
                    await self.wait_for(result.last_position)
                await self._erase(session_id)
                return True
        finally:
            self._leave_turn(session_id, turn)

    def _deletable(self, session_id: str) -> bool:
        return self.get(session_id) is not None or session_id in self.catalogue.unerased

    async def _erase(self, session_id: str) -> None:
        await self.store.delete_stream(session_id)
        info = await self.store.stream_info(session_id)
        erased = info.erased_events if info is not None else 0
        done = new_event(
            "session_erased",
            {"session_id": session_id, "erased_events": erased},
            timestamp=time.time(),
            stream_id="$sessions",
        )
        result = await self.store.append(SESSIONS_STREAM, [done])
        await self.wait_for(result.last_position)

    # ---- checkpoints --------------------------------------------------------------

    def encode_checkpoint(self) -> bytes:
        """`catalogue.encode` output, re-encoding only the sessions that changed."""
        encoded, self._encoded = _finish(_encode_catalogue(self._snapshot(), self._encoded))
        return encoded

    def _snapshot(self) -> CatalogueState:
        """A consistent copy to encode off the event loop.

        Session states are never mutated (folds replace them), so a shallow copy of
        the containers the folds do change in place is enough.
        """
        c = self.catalogue
        return CatalogueState(
            position=c.position,
            sessions=dict(c.sessions),
            deleted=dict(c.deleted),
            unerased=list(c.unerased),
        )

    async def save_checkpoint(self) -> None:
        started = time.monotonic()
        snapshot = self._snapshot()
        # Encoding thousands of sessions takes 0.1-0.5 s: done on the event loop in
        # slices of ENCODE_SLICE_SECONDS, so timer rounds and requests run in between.
        # (In a thread it stalled the loop instead: each time the loop released the
        # GIL for I/O it waited up to a switch interval to get it back; measured at
        # 100k timers, p99 lateness 0.26-0.66 s in a thread, 0.16 s sliced.)
        steps = _encode_catalogue(snapshot, self._encoded, ENCODE_SLICE_SECONDS)
        encoded, self._encoded = await _finish_sliced(steps)
        await self.store.save_checkpoint(self.checkpoint_name, snapshot.position, encoded)
        self._saved_position = snapshot.position
        self._saved_at = time.monotonic()
        self._save_cost = self._saved_at - started

    async def _save_at_start(self) -> None:
        """A checkpoint during start is an optimisation: on a full disk, start without it
        (the checkpointer retries with backoff) rather than refuse to serve reads."""
        try:
            await self.save_checkpoint()
        except StoreUnavailable as exc:
            self.supervisor.incidents.refused_write(exc)

    async def _checkpoint_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            behind = self.catalogue.position - self._saved_position
            since = time.monotonic() - self._saved_at
            stale = since >= CHECKPOINT_EVERY_SECONDS
            rested = since >= CHECKPOINT_DUTY * self._save_cost
            if rested and (behind >= CHECKPOINT_EVERY_EVENTS or (behind > 0 and stale)):
                await self.save_checkpoint()  # a failure goes to the supervisor (backoff)


Encoded = tuple[bytes, dict[str, tuple[int, bytes]]]


def _encode_catalogue(
    catalogue: CatalogueState,
    cache: dict[str, tuple[int, bytes]],
    slice_seconds: float = float("inf"),
) -> Generator[None, None, Encoded]:
    """`catalogue.encode` bytes, reusing `cache` for sessions whose state is unchanged;
    a generator that pauses (yields) every `slice_seconds` of work, returning the bytes
    and the new cache (`_finish` runs it through, `_finish_sliced` yields to the loop).

    The cache is keyed by the session's stream version: a session's state is the fold
    of its own stream, so one version is one state (a deleted id is never reused).
    Keeping the states themselves kept every replaced state alive until the next
    checkpoint: twice the objects for the garbage collector to walk."""
    parts: list[bytes] = []
    fresh: dict[str, tuple[int, bytes]] = {}
    clock = time.perf_counter
    pause_at = clock() + slice_seconds
    for n, (sid, state) in enumerate(catalogue.sessions.items()):
        cached = cache.get(sid)
        raw = cached[1] if cached is not None and cached[0] == state.version else None
        if raw is None:
            raw = orjson.dumps(state.to_dict())
        fresh[sid] = (state.version, raw)
        parts.append(raw)
        if n % 16 == 15 and clock() >= pause_at:
            yield
            pause_at = clock() + slice_seconds
    head = cat.to_dict(CatalogueState(position=catalogue.position))
    head["deleted"] = catalogue.deleted
    head["unerased"] = catalogue.unerased
    head["sessions"] = []
    skeleton = orjson.dumps(head)
    before, after = skeleton.split(b'"sessions":[]', 1)
    return before + b'"sessions":[' + b",".join(parts) + b"]" + after, fresh


def _finish(steps: Generator[None, None, Encoded]) -> Encoded:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(Encoded, done.value)


async def _finish_sliced(steps: Generator[None, None, Encoded]) -> Encoded:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(Encoded, done.value)
        await asyncio.sleep(0)  # one loop turn: due timers and requests go first
