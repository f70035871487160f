"""One scheduler task per process: a heap of due times taken from the projection.

hive ran one asyncio task per trigger, which could be started twice and kept its
schedule in memory. Here the schedule is state folded from the log; this task
only keeps a heap of (due, session, trigger) built from it. The service's
`listeners` hook marks a session dirty whenever one of its events is folded, and
the loop recomputes that session's due times at once. Due triggers are settled
per session through `service.execute` with the pure `decide_fires`, whose event
ids are derived from the slot, so a slot can never be recorded twice: not after a
crash, not from a second node, not from a retry.

With several nodes on one log, a node schedules only the sessions it runs
(`runner_node`, projections/ownership.py; sessions with no recorded runner are
scheduled everywhere, the derived ids deduplicating). With a lease table, each
session's due fires are also claimed (`fire:<session>` lease, fenced) before they
are appended, so during an adoption the old and the new runner never both work on
the same session's slots.

A fire id the store already holds (the same trigger id's slot, recorded before the
trigger was removed and added again) makes that slot a `fire_id_taken` skip, never a
second fire (`_record_alone`). Retry backoffs are kept on the monotonic clock, so a
wall-clock step does not stretch them (`_note_clock_step`). Plans count long cron
backlogs within STEPS_PER_TURN croniter steps per loop turn (`_record`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable

from api.core.clock import Clock
from api.core.service import SessionService
from api.core.supervisor import Supervisor
from api.core.tasks import stop_task, stop_tasks
from eventstore import (
    DuplicateEventId,
    InvalidEvent,
    NewEvent,
    RecordedEvent,
    StoreUnavailable,
)
from eventstore.leases import Lease, Leases
from projections.catalogue import SESSIONS_STREAM
from projections.envelope import decode, payload
from projections.errors import DomainError
from projections.ids import is_session_stream
from projections.schedule import (
    FIRE_ALL_CAP,
    Backlogs,
    StepBudget,
    Uncounted,
    next_due,
)
from projections.session import SessionState
from projections.trigger_commands import decide_fires
from projections.triggers import TRIGGER_EVENT_TYPES, TriggerState

log = logging.getLogger("hivelog.scheduler")

WATCHED_TYPES = TRIGGER_EVENT_TYPES | {
    "session_created",
    "session_resumed",
    "session_adopted",
    "session_stopped",
    "worker_colony_loaded",
    "colony_unloaded",
}
RETRY_MS = 1000  # after a failed fire, try that session again this much later
STORE_RETRY_MS = 5000  # after the store refused a fire (disk full): fewer doomed attempts
MAX_CONCURRENT_SESSIONS = 256  # fires in flight at once (group commit batches them)
FIRE_CLAIM_TTL = 30.0  # seconds a fire claim lasts if its node dies while holding it
# Fire rounds are at least this far apart (real time): slots falling due within one
# tick are settled together, so 1,000 fires/s cost ~100 group commits, not ~1,000.
# It bounds the added lateness (p99 target 50 ms); 0 fires each slot on its own.
FIRE_TICK_SECONDS = 0.020
HEAP_SLACK = 64  # stale heap entries tolerated beyond the live ones before a rebuild
# Cron slots the plans of one event-loop turn may count (~25-45 µs each: ~3-6 ms):
# a long backlog is counted over several turns, the loop serving requests between them.
STEPS_PER_TURN = 128
# Wall minus monotonic time moving by more than this is a clock step: retry times,
# kept monotonic, are turned into due times again.
CLOCK_STEP_MS = 100
# Fire ids found already stored for one trigger in one round, at most (a fire_all
# round holds up to FIRE_ALL_CAP + 1 fires and two `missed_triggers`; ids derived in
# their place may be taken too): past it the trigger is poisoned.
MAX_TAKEN_IDS = 2 * (FIRE_ALL_CAP + 3)

Key = tuple[str, str]  # (session id, trigger id)


BadDecisions = dict[str, tuple[TriggerState | None, BaseException]]  # trigger id -> why


def webhook_index_entry(state: SessionState, trigger: TriggerState) -> str | None:
    """The webhook path an active webhook trigger listens on, or None."""
    if trigger.trigger_type != "webhook" or not trigger.active:
        return None
    path = trigger.trigger_config.get("path")
    return path if isinstance(path, str) else None


class Scheduler:
    """See the module docstring. `start()` after the session service has started."""

    def __init__(
        self,
        service: SessionService,
        clock: Clock,
        *,
        node_id: str | None = None,
        leases: Leases | None = None,
        supervisor: Supervisor | None = None,
        fire_tick: float = FIRE_TICK_SECONDS,
        may_fire: Callable[[], bool] = lambda: True,
    ) -> None:
        self.service = service
        # False while this process must not fire (its node id was taken by another
        # process while it was paused: that one runs the node's timers now)
        self.may_fire = may_fire
        self.fire_tick = fire_tick
        self._round_at = 0.0  # loop time before which no new fire round starts
        self.supervisor = supervisor or service.supervisor
        self.clock = clock
        self.node_id = node_id  # None: schedule every live session (one node)
        self.leases = leases  # None: no fire claims (one process on the log)
        self._heap: list[tuple[int, str, str]] = []
        self._due: dict[Key, int] = {}
        self._by_session: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, int] = {}  # monotonic ms (a backoff, not a wall time)
        self._clock_offset: int | None = None  # wall minus monotonic ms at the last look
        self._budget = StepBudget(STEPS_PER_TURN)  # shared by every fire's plans
        self._refill: asyncio.Handle | None = None
        # per session, per trigger: (state, loaded_at, due) as last computed
        self._seen: dict[str, dict[str, tuple[TriggerState, float, int | None]]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_SESSIONS)
        self.fires_settled = 0  # decide_fires calls that appended something
        self.on_settled: Callable[[str], None] | None = None  # test and bench hook
        # Triggers whose schedule computation raised: skipped (not fired) until their
        # state changes; reported in /api/health, logged once. Value: (state, reason).
        self.poisoned: dict[Key, tuple[TriggerState | None, str]] = {}

    # ---- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = None
        self.service.listeners.append(self._on_event)
        self._task = self.supervisor.spawn("scheduler", self._run_fresh, probe=self.poison_report)

    def begin_stop(self) -> None:
        """Start stopping now (on SIGTERM, while HTTP requests still drain: fires during
        the drain only compete with them; a slot not fired is caught up at the next start)."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop(), name="stop")

    async def stop(self) -> None:
        """Stop the loop and every fire in flight; any number of callers share one stop."""
        self.begin_stop()
        assert self._stopping is not None
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.service.listeners.remove(self._on_event)
        await stop_task(self._task)
        self._task = None
        await stop_tasks(list(self._inflight.values()))

    # ---- what is due --------------------------------------------------------------

    def _on_event(self, event: RecordedEvent) -> None:
        if event.type in WATCHED_TYPES and is_session_stream(event.stream_id):
            self._dirty.add(event.stream_id)
            self._wake.set()
        elif event.type == "session_deleted" and event.stream_id == SESSIONS_STREAM:
            self._on_deleted(event)

    def _on_deleted(self, event: RecordedEvent) -> None:
        """Refresh a deleted session once: whatever is kept about it (poisoned triggers
        without a due time above all) is dropped, not reported for ever."""
        session_id = payload(decode(event)).get("session_id")
        if isinstance(session_id, str):
            self._dirty.add(session_id)
            self._wake.set()

    def _refresh(self, session_id: str) -> None:
        """Recompute the due time of every timer of one session from the projection."""
        state = self.service.get(session_id)
        known = self._by_session.pop(session_id, set())
        wanted: dict[str, int] = {}
        if state is not None and state.live and self._runs(state):
            wanted = self._wanted(session_id, state)
        self._forget(session_id, state)
        for trigger_id in known - wanted.keys():
            self._due.pop((session_id, trigger_id), None)
        for trigger_id, due in wanted.items():
            key = (session_id, trigger_id)
            if self._due.get(key) != due:
                self._due[key] = due
                heapq.heappush(self._heap, (due, session_id, trigger_id))
        if wanted:
            self._by_session[session_id] = set(wanted)
        self._compact_heap()

    def _compact_heap(self) -> None:
        """Rebuild the heap from the live due times once stale entries outnumber them:
        each edit of a far-future timer leaves one behind until its old due time."""
        if len(self._heap) > 2 * len(self._due) + HEAP_SLACK:
            self._heap = [(due, sid, tid) for (sid, tid), due in self._due.items()]
            heapq.heapify(self._heap)

    def _wanted(self, session_id: str, state: SessionState) -> dict[str, int]:
        """The due time of each timer of a session this node runs (poisoned ones left out)."""
        wanted: dict[str, int] = {}
        now_ms = self.clock.now_ms()
        retry = self._retry_until(session_id, now_ms)
        seen_here = self._seen.setdefault(session_id, {})
        all_poisoned = self.poisoned
        for trigger in state.triggers.values():
            key = (session_id, trigger.id)
            seen = seen_here.get(trigger.id)
            poisoned = all_poisoned.get(key) if all_poisoned else None
            if poisoned is not None and poisoned[0] is trigger:
                continue  # still the same bad state: skipped until it changes
            if seen is not None and seen[0] is trigger and seen[1] == state.loaded_at:
                due = seen[2]  # unchanged trigger (folds keep untouched ones): no recompute
            else:
                try:
                    due = next_due(trigger, now_ms) if trigger.anchor_at is not None else None
                except Exception as exc:  # one bad value must not stop every timer
                    self._poison(key, trigger, exc)
                    continue
                self._cure(key)
                seen_here[trigger.id] = (trigger, state.loaded_at, due)
            if due is not None:
                wanted[trigger.id] = due if retry is None else max(due, retry)
        return wanted

    def _retry_until(self, session_id: str, now_ms: int) -> int | None:
        """The wall time the session may be tried again at (None: now), from its backoff
        kept on the monotonic clock; `_note_clock_step` redoes it after a step."""
        retry = self._retry_at.get(session_id)
        if retry is None:
            return None
        left = retry - self.clock.monotonic_ms()
        return now_ms + left if left > 0 else None

    def _retry_later(self, session_id: str, delay_ms: int) -> None:
        self._retry_at[session_id] = self.clock.monotonic_ms() + delay_ms

    def _note_clock_step(self) -> None:
        """After the wall clock stepped (NTP, a suspended VM), recompute the due times
        of sessions waiting for a retry: theirs were wall times computed before it, and
        a backward step would hold them for its whole size (an hour back: an hour)."""
        offset = self.clock.now_ms() - self.clock.monotonic_ms()
        last = self._clock_offset
        if last is None or abs(offset - last) > CLOCK_STEP_MS:
            self._clock_offset = offset
            if last is not None:
                self._dirty.update(self._retry_at)

    def _forget(self, session_id: str, state: SessionState | None) -> None:
        """Drop what is kept about triggers that are gone (or now run by another node),
        so /api/health does not name deleted triggers for ever and nothing leaks."""
        runs_here = state is not None and self._runs(state)
        current = state.triggers if state is not None and runs_here else {}
        seen = self._seen.get(session_id)
        if seen is not None:
            for trigger_id in seen.keys() - current.keys():
                del seen[trigger_id]
            if not seen:
                del self._seen[session_id]
        if self.poisoned:
            gone = [k for k in self.poisoned if k[0] == session_id and k[1] not in current]
            for key in gone:
                del self.poisoned[key]
        if state is None or not state.live or not runs_here:
            self._retry_at.pop(session_id, None)

    def _runs(self, state: SessionState) -> bool:
        """Whether this node runs the session's timers."""
        return self.node_id is None or state.runner_node in (None, self.node_id)

    def next_due_ms(self) -> int | None:
        """The earliest live due time (stale heap entries dropped on the way)."""
        while self._heap:
            due, sid, tid = self._heap[0]
            if self._due.get((sid, tid)) == due:
                return due
            heapq.heappop(self._heap)
        return None

    def due_count(self) -> int:
        return len(self._due)

    # ---- poisoned input -------------------------------------------------------------

    def _poison(
        self,
        key: Key,
        trigger: TriggerState | None,
        exc: BaseException,
        why: str = "its schedule cannot be computed",
    ) -> None:
        """Skip one trigger whose schedule cannot be computed or recorded; log it once."""
        reason = f"{type(exc).__name__}: {exc}"
        if key not in self.poisoned:
            log.error(
                "trigger %s of session %s is skipped: %s (%s); other triggers keep firing",
                key[1],
                key[0],
                why,
                reason,
                exc_info=exc,
            )
        self.poisoned[key] = (trigger, reason)

    def _cure(self, key: Key) -> None:
        if self.poisoned.pop(key, None) is not None:
            log.warning("trigger %s of session %s is scheduled again", key[1], key[0])

    def poison_report(self) -> str | None:
        """Why the scheduler is degraded (health), or None."""
        if not self.poisoned:
            return None
        shown = sorted(self.poisoned.items())[:5]
        names = "; ".join(f"{sid}/{tid}: {reason}" for (sid, tid), (_, reason) in shown)
        more = len(self.poisoned) - len(shown)
        return f"{len(self.poisoned)} trigger(s) skipped: {names}" + (
            f" (and {more} more)" if more > 0 else ""
        )

    # ---- the loop -----------------------------------------------------------------

    async def _run_fresh(self) -> None:
        """The loop, from a clean slate: at start, and after a restart by the supervisor
        (whatever the failure left half-done in the heap is rebuilt from the projection)."""
        self._heap.clear()
        self._due.clear()
        self._by_session.clear()
        self._seen.clear()
        self._dirty.update(self.service.catalogue.sessions)
        await self._run()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self._note_clock_step()
            while self._dirty:
                self._refresh(self._dirty.pop())
            now_ms = self.clock.now_ms()
            gate = self._round_at - loop.time()
            if gate > 0 and (due := self.next_due_ms()) is not None and due <= now_ms:
                await asyncio.sleep(gate)  # due, but within the tick: join the next round
                continue
            batch: dict[str, set[str]] = {}
            while (due := self.next_due_ms()) is not None and due <= now_ms:
                _, sid, tid = heapq.heappop(self._heap)
                del self._due[(sid, tid)]
                self._by_session.get(sid, set()).discard(tid)
                if sid not in self._inflight:  # else refreshed when the current fire lands
                    batch.setdefault(sid, set()).add(tid)
            for sid, tids in batch.items():
                self._inflight[sid] = asyncio.create_task(self._fire(sid, tids), name="fire")
            if batch:
                self._round_at = loop.time() + self.fire_tick
            if self._dirty:
                continue
            if self._inflight:
                self._idle.clear()
            else:
                self._idle.set()
            await self.clock.wait(self.next_due_ms(), self._wake)
            self._idle.clear()

    async def _fire(self, session_id: str, trigger_ids: set[str]) -> None:
        claim: Lease | None = None
        try:
            before = self.service.get(session_id)
            async with self._slots:
                if not self.may_fire():
                    self._retry_later(session_id, RETRY_MS)
                    return
                if self.leases is not None and self.node_id is not None:
                    claim = await self.leases.acquire(
                        f"fire:{session_id}", self.node_id, FIRE_CLAIM_TTL
                    )
                    if claim is None:  # another node is settling this session's slots
                        self._retry_later(session_id, RETRY_MS)
                        return
                state = await self._settle(session_id, trigger_ids)
            if state is None or (before is not None and state.version == before.version):
                # due by the heap but nothing to record: never spin on it
                self._retry_later(session_id, RETRY_MS)
            else:
                self._retry_at.pop(session_id, None)
                self.fires_settled += 1
        except DomainError as exc:
            log.info("fires for %s not recorded: %s", session_id, exc.message)
        except StoreUnavailable as exc:
            self.supervisor.incidents.refused_write(exc)  # one log line per incident
            self._retry_later(session_id, STORE_RETRY_MS)
        except Exception:
            log.exception("recording fires for %s failed; retrying in %d ms", session_id, RETRY_MS)
            self._retry_later(session_id, RETRY_MS)
        finally:
            if claim is not None and self.leases is not None:
                with contextlib.suppress(Exception):
                    await self.leases.release(claim)
            self._inflight.pop(session_id, None)
            self._dirty.add(session_id)
            self._wake.set()
            if self.on_settled is not None:
                self.on_settled(session_id)

    async def _settle(self, session_id: str, trigger_ids: set[str]) -> SessionState | None:
        """Record the round; if the store refuses it for one event's sake (a derived fire
        id already stored, an event over the size limit), record each trigger on its own:
        the others still fire and nothing is retried hot. The round's cron counts (and
        its `now`) serve every attempt."""
        now_ms = self.clock.now_ms()
        backlogs = Backlogs(self._budget)
        try:
            return await self._record(session_id, trigger_ids, now_ms, backlogs)
        except (DuplicateEventId, InvalidEvent) as exc:
            log.warning("fires for %s refused (%s): settling each trigger alone", session_id, exc)
        # Decide again on a caught-up projection: without fire claims another node may
        # just have recorded some of these slots (its ids, a different batch); those are
        # then no longer due, and what is refused still is really this trigger's fault.
        await self.service.catch_up()
        for tid in sorted(trigger_ids):
            await self._record_alone(session_id, tid, now_ms, backlogs)
        return self.service.get(session_id)

    async def _record_alone(
        self, session_id: str, trigger_id: str, now_ms: int, backlogs: Backlogs
    ) -> None:
        """One trigger's fires. A derived id the store already holds stands for this
        trigger id's outcome of that slot, recorded before (by a trigger of the same id
        removed and added again with an anchor before it, e.g. on a node whose clock is
        behind): the slot is then recorded as skipped under an id derived from the taken
        one (`scheduled_events`' `taken`), never fired twice, and the trigger goes on.
        Each refusal names one taken id, so this asks again with it, a bounded number of
        times; an event the store refuses otherwise poisons the trigger: retrying it
        would be refused again until its state changes."""
        taken: set[str] = set()
        for _attempt in range(MAX_TAKEN_IDS + 1):
            try:
                await self._record(session_id, {trigger_id}, now_ms, backlogs, frozenset(taken))
                return
            except InvalidEvent as exc:
                self._refused(session_id, trigger_id, exc)
                return
            except DuplicateEventId as exc:
                if exc.event_id in taken or len(taken) >= MAX_TAKEN_IDS:
                    self._refused(session_id, trigger_id, exc)
                    return
                taken.add(exc.event_id)
                await self.service.catch_up()

    def _refused(self, session_id: str, trigger_id: str, exc: BaseException) -> None:
        """Poison one trigger whose own fire append the store refuses."""
        state = self.service.get(session_id)
        trigger = state.triggers.get(trigger_id) if state is not None else None
        self._poison((session_id, trigger_id), trigger, exc, "the store refuses its fire")

    async def _record(
        self,
        session_id: str,
        trigger_ids: set[str],
        now_ms: int,
        backlogs: Backlogs,
        taken: frozenset[str] = frozenset(),
    ) -> SessionState:
        """One append for the round; triggers whose decision raised are poisoned, the
        others' fires recorded (one bad value never stops the other timers). A decision
        whose cron counts ran out of the turn's step budget is made again after a loop
        turn (nothing was appended; the counts go on where they stopped)."""
        bad: BadDecisions = {}
        try:
            while True:
                try:
                    return await self.service.execute(
                        session_id,
                        lambda st: self._decide(
                            st, session_id, trigger_ids, now_ms, bad, taken, backlogs
                        ),
                    )
                except Uncounted:
                    await self._next_turn()
        finally:
            for tid, (trigger, exc) in bad.items():
                self._poison((session_id, tid), trigger, exc)

    async def _next_turn(self) -> None:
        """Let the event loop take a turn (I/O, requests, timers), then refill the step
        budget: the refill is queued before the waiters resume, so one turn's plans count
        at most STEPS_PER_TURN slots, whichever fires share them."""
        if self._refill is None:
            self._refill = asyncio.get_running_loop().call_soon(self._refilled)
        await asyncio.sleep(0)

    def _refilled(self) -> None:
        self._refill = None
        self._budget.refill()

    def _decide(
        self,
        state: SessionState | None,
        session_id: str,
        trigger_ids: set[str],
        now_ms: int,
        bad: BadDecisions,
        taken: frozenset[str],
        backlogs: Backlogs,
    ) -> list[NewEvent]:
        """`decide_fires` for the round; if it raises, each trigger is decided on its own
        and those that raise are left out (into `bad`), so the rest still fire."""
        bad.clear()  # execute may decide again on a newer state
        try:
            return decide_fires(
                state, session_id, trigger_ids, now_ms, taken=taken, backlogs=backlogs
            )
        except (DomainError, Uncounted):
            raise
        except Exception:
            pass  # some trigger's input is bad: find which below
        events: list[NewEvent] = []
        for tid in sorted(trigger_ids):
            try:
                events.extend(
                    decide_fires(state, session_id, {tid}, now_ms, taken=taken, backlogs=backlogs)
                )
            except (DomainError, Uncounted):
                raise
            except Exception as exc:
                bad[tid] = (state.triggers.get(tid) if state is not None else None, exc)
        return events

    async def idle(self, within: float = 30.0) -> None:
        """Return once nothing is dirty, in flight or due now (tests, with a fake clock)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        spins = 0
        while loop.time() < deadline:
            await asyncio.sleep(0 if spins < 50 else 0.001)
            spins += 1
            due = self.next_due_ms()
            settled = not self._inflight and not self._dirty and self._idle.is_set()
            if settled and (due is None or due > self.clock.now_ms()):
                return
        raise TimeoutError("scheduler did not settle")
