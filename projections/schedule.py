"""When timer triggers fire: pure schedule arithmetic, config validation, fire ids.

hive computed next fires from "now" and kept them in memory, so restarts lost or
burst slots. Here every slot is a pure function of the trigger's config, its
anchor (when the schedule started) and the last slot already handled (both
folded from the log), so any process computes the same slots and the same
derived event id per slot: a slot is recorded at most once.

Cron runs on local wall time in the trigger's IANA `timezone` (default UTC). DST
follows Vixie cron: an expression with a fixed hour fires once per local match
(a non-existent time is shifted forward by the gap, a repeated time fires on its
first occurrence only), so a daily job fires once per local day; an expression
whose hour field is `*` follows real time (both repeated hours fire, a skipped
hour has no slots). Intervals are elapsed time, anchor + k x interval, no drift.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import heapq
import uuid
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar
from zoneinfo import ZoneInfo

import orjson
from croniter import croniter
from croniter.croniter import CroniterBadDateError

from eventstore.base import uuid_text
from projections.trigger_config import (  # re-exported: callers validate through here too
    MIN_INTERVAL_MS,
    MISFIRE_POLICIES,
    WEBHOOK_METHODS,
    ConfigError,
    merge_config,
    validate_config,
    validate_timer_config,
    validate_webhook_config,
)

__all__ = [
    "MIN_INTERVAL_MS",
    "MISFIRE_POLICIES",
    "WEBHOOK_METHODS",
    "ConfigError",
    "merge_config",
    "validate_config",
    "validate_timer_config",
    "validate_webhook_config",
]

DEFAULT_MISFIRE: Final = "fire_once"
DEFAULT_GRACE_SECONDS: Final = 60.0
MIN_GRACE_MS: Final = 1000  # scheduling jitter below this is never a misfire, whatever the config
FIRE_ALL_CAP: Final = 100  # fire_all replays at most this many missed slots (hive HEAD lists 100)
# Missed cron slots counted exactly up to this many (past it: "at least"). Counting walks
# croniter slot by slot, ~25-35 µs a slot, on the event loop: 100,000 held every request and
# timer for 2-3 s per trigger with a long backlog; 10,000 bounds it near 0.3 s.
COUNT_LIMIT: Final = 10_000
DST_MARGIN: Final = dt.timedelta(hours=3)  # wider than any DST gap in the tz database
FIRE_NAMESPACE: Final = uuid.UUID("6f1d8a4e-2b0c-5e7a-9a51-3c1e0b7d4f10")
_FIRE_NAMESPACE_BYTES: Final = FIRE_NAMESPACE.bytes
_EPOCH = dt.datetime(1970, 1, 1)
MAX_SLOT_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: datetime's last instant
ARITHMETIC_ERRORS: Final = (OverflowError, ValueError, OSError, ArithmeticError)


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str | None
    interval_ms: int | None
    tz: ZoneInfo | None  # None: UTC
    misfire: str = DEFAULT_MISFIRE
    grace_ms: int = int(DEFAULT_GRACE_SECONDS * 1000)

    @property
    def wildcard_hour(self) -> bool:
        return self.cron is not None and _hour_is_wildcard(self.cron)


# -- schedules -----------------------------------------------------------------------


def parse_schedule(trigger_type: str, config: Mapping[str, Any]) -> Schedule | None:
    """The schedule of a timer config, or None when it cannot fire (logged configs may be
    anything: an invalid stored config means "no timer", never an exception). Cached by
    the config's canonical JSON: validating a cron costs far more than encoding it."""
    if trigger_type != "timer":
        return None
    try:
        key = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return _parse_timer(key)


def sane_ms(value: object) -> bool:
    """An epoch-ms value the arithmetic and the log can hold: an int in [1970, 9999]."""
    if type(value) is int:  # the common case first: a fire checks a dozen of these
        return 0 <= value <= MAX_SLOT_MS
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SLOT_MS


@functools.lru_cache(maxsize=8192)
def _parse_timer(key: bytes) -> Schedule | None:
    try:
        return _schedule_of(validate_timer_config(orjson.loads(key)))
    except (ConfigError, orjson.JSONDecodeError, TypeError, *ARITHMETIC_ERRORS):
        return None  # the validator bounds every number; this is the second line


def _schedule_of(valid: dict[str, Any]) -> Schedule:
    cron = valid.get("cron") or None
    interval: float = valid.get("interval_minutes") or 0.0
    tz_name = valid.get("timezone")
    grace = valid.get("misfire_grace_seconds")
    grace = DEFAULT_GRACE_SECONDS if grace is None else grace  # null means the default
    return Schedule(
        cron=cron,
        interval_ms=None if cron else round(interval * 60_000),
        tz=ZoneInfo(tz_name) if tz_name and tz_name != "UTC" else None,
        misfire=valid.get("misfire") or DEFAULT_MISFIRE,
        grace_ms=max(MIN_GRACE_MS, round(float(grace) * 1000)),
    )


def _hour_is_wildcard(expr: str) -> bool:
    text = expr.strip()
    if text.startswith("@"):
        return text.lower() == "@hourly"
    fields = text.split()
    return len(fields) >= 2 and fields[1].startswith("*")


def _wall(ms: int, tz: ZoneInfo | None) -> dt.datetime:
    """Naive local wall time of an instant (croniter iterates naive values as-is)."""
    instant = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return (instant.astimezone(tz) if tz else instant).replace(tzinfo=None)


def _offset(ms: int, tz: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(ms / 1000, tz).utcoffset()


_MARGIN_MS: Final = int(DST_MARGIN.total_seconds() * 1000)


def _near_dst_change(ms: int, tz: ZoneInfo | None) -> bool:
    """Whether `tz`'s offset changes within DST_MARGIN of `ms` (where a wall time may be
    shifted or repeated); never in UTC."""
    return tz is not None and len({_offset(ms + d, tz) for d in (-_MARGIN_MS, 0, _MARGIN_MS)}) > 1


def _instants(wall: dt.datetime, tz: ZoneInfo | None, wildcard_hour: bool) -> list[int]:
    """The instants (epoch ms) a local wall-time match stands for, by the DST rule above."""
    if tz is None:
        return [round((wall - _EPOCH).total_seconds() * 1000)]
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [round(first.timestamp() * 1000)]
    exists = first.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) == wall
    if exists:  # repeated (fall back): first occurrence, or both for hour `*`
        both = [round(first.timestamp() * 1000), round(second.timestamp() * 1000)]
        return both if wildcard_hour else both[:1]
    # skipped (spring forward): fold=0 reads the pre-transition offset = shifted by the gap
    return [] if wildcard_hour else [round(first.timestamp() * 1000)]


def _cron_slots(schedule: Schedule, after_ms: int) -> Iterator[int]:
    """Cron slots after `after_ms`; ends (never raises) where datetime or croniter give up."""
    try:
        yield from _cron_walk(schedule, after_ms)
    except (CroniterBadDateError, *ARITHMETIC_ERRORS):
        return


def _cron_walk(schedule: Schedule, after_ms: int) -> Iterator[int]:
    assert schedule.cron is not None
    start = _wall(after_ms, schedule.tz)
    if _near_dst_change(after_ms, schedule.tz):
        start -= DST_MARGIN  # a shifted or repeated wall time may map past `after`
    itr = croniter(schedule.cron, start, max_years_between_matches=30)
    last = after_ms
    wildcard = schedule.wildcard_hour
    pending: list[int] = []  # DST can map a later wall time to an earlier instant: reorder
    while True:
        try:
            wall: dt.datetime = itr.get_next(dt.datetime)
        except CroniterBadDateError:
            bound = None
        else:
            for ms in _instants(wall, schedule.tz, wildcard):
                heapq.heappush(pending, ms)
            bound = _earliest_instant(wall, schedule.tz)
        while pending and (bound is None or pending[0] <= bound):
            ms = heapq.heappop(pending)
            if ms > last:
                last = ms
                yield ms
        if bound is None:
            return


def _cron_slots_before(
    schedule: Schedule, now_ms: int, after_ms: int, keep: int
) -> Generator[None, None, list[int]]:
    """The newest `keep` cron slots in (after_ms, now_ms], descending: the slots
    `_cron_slots(schedule, after_ms)` gives up to `now_ms`, read from the other end (the
    same walls, mapped by `_instants`). Ends (never raises) where datetime or croniter
    give up, so it may return fewer. Pauses before each slot, as `_count_cron` does."""
    out: list[int] = []
    if keep <= 0:
        return out
    try:
        for slot in _cron_walk_back(schedule, now_ms):
            yield
            if slot <= after_ms:
                break
            out.append(slot)
            if len(out) >= keep:
                break
    except (CroniterBadDateError, *ARITHMETIC_ERRORS):
        pass
    return out


def _cron_walk_back(schedule: Schedule, now_ms: int) -> Iterator[int]:
    """Cron slots <= `now_ms`, descending, each once: `_cron_walk` in reverse.

    Wall time and real time disagree only near a DST change, by less than DST_MARGIN
    (the assumption `_cron_walk`'s start rests on too): a wall earlier than another by
    more than the margin maps to an earlier instant. So an instant `p` of wall `w` is
    final (no wall still to come maps past it) once the walk is below `w - DST_MARGIN`,
    or below `w` already where the offset is the same from `p - margin` to `p + margin`
    (no shifted or repeated wall near it), or at once in UTC."""
    assert schedule.cron is not None
    tz = schedule.tz
    start = _wall(now_ms, tz) + dt.timedelta(seconds=1)  # get_prev: strictly before start
    if _near_dst_change(now_ms, tz):
        start += DST_MARGIN  # a later wall time may map to an instant at or before `now`
    itr = croniter(schedule.cron, start, max_years_between_matches=30)
    wildcard = schedule.wildcard_hour
    last: int | None = None
    pending: list[tuple[int, dt.datetime]] = []  # max-heap of (-instant, wall it is final below)
    while True:
        wall: dt.datetime | None
        try:
            wall = itr.get_prev(dt.datetime)
        except CroniterBadDateError:
            wall = None
        else:
            for ms in _instants(wall, tz, wildcard):
                if ms > now_ms:
                    continue
                final_below = wall - DST_MARGIN if _near_dst_change(ms, tz) else wall
                heapq.heappush(pending, (-ms, final_below))
        while pending and (wall is None or wall < pending[0][1] or tz is None):
            ms = -heapq.heappop(pending)[0]
            if last is None or ms < last:
                last = ms
                yield ms
        if wall is None:
            return


def _earliest_instant(wall: dt.datetime, tz: ZoneInfo | None) -> int:
    """No wall time after `wall` maps to an instant before this one."""
    if tz is None:
        return round((wall - _EPOCH).total_seconds() * 1000)
    offsets = [wall.replace(tzinfo=tz, fold=f).utcoffset() or dt.timedelta(0) for f in (0, 1)]
    return round((wall - _EPOCH - max(offsets)).total_seconds() * 1000)


def slots_after(schedule: Schedule, after_ms: int, anchor_ms: int) -> Iterator[int]:
    """Every slot strictly after `after_ms`, ascending (intervals: anchor + k*interval, k>=1),
    up to MAX_SLOT_MS; none when a time given is not `sane_ms` (a bad logged value means
    "never fires", not an exception in the scheduler)."""
    if not (sane_ms(after_ms) and sane_ms(anchor_ms)):
        return
    if schedule.interval_ms is not None:
        step = schedule.interval_ms
        if step <= 0:
            return
        k = max(1, (after_ms - anchor_ms) // step + 1)
        while (slot := anchor_ms + k * step) <= MAX_SLOT_MS:
            yield slot
            k += 1
    else:
        for slot in _cron_slots(schedule, max(after_ms, anchor_ms)):
            if slot > MAX_SLOT_MS:
                return
            yield slot


def next_slot(schedule: Schedule, after_ms: int, anchor_ms: int) -> int | None:
    """The first of `slots_after` (intervals by arithmetic, without the generator)."""
    step = schedule.interval_ms
    if step is None:
        return next(slots_after(schedule, after_ms, anchor_ms), None)
    if step <= 0 or not (sane_ms(after_ms) and sane_ms(anchor_ms)):
        return None
    slot = anchor_ms + max(1, (after_ms - anchor_ms) // step + 1) * step
    return slot if slot <= MAX_SLOT_MS else None


@dataclass(frozen=True, slots=True)
class Due:
    """Slots in (after, now]: how many, whether counted exactly, and the newest few."""

    count: int
    exact: bool
    first: int | None
    newest: tuple[int, ...]


def due_slots(
    schedule: Schedule,
    after_ms: int,
    now_ms: int,
    anchor_ms: int,
    keep: int,
    backlogs: Backlogs | None = None,
) -> Due:
    """Bounded work whatever the downtime: intervals by arithmetic; cron counted up to
    COUNT_LIMIT (past it `exact` is False and `count` a lower bound), the newest `keep`
    always the real newest due (past the limit, walked back from `now`). With `backlogs`
    a cron count takes at most its budget's steps and raises `Uncounted` when the
    budget runs out (same result once counted)."""
    after = max(after_ms, anchor_ms)
    if not (sane_ms(after) and sane_ms(anchor_ms) and sane_ms(now_ms)):
        return Due(0, True, None, ())
    if schedule.interval_ms is not None:
        step = schedule.interval_ms
        if step <= 0:
            return Due(0, True, None, ())
        k_first = max(1, (after - anchor_ms) // step + 1)
        k_last = (now_ms - anchor_ms) // step
        if k_last < k_first:
            return Due(0, True, None, ())
        ks = range(max(k_first, k_last - keep + 1), k_last + 1)
        return Due(
            k_last - k_first + 1,
            True,
            anchor_ms + k_first * step,
            tuple(anchor_ms + k * step for k in ks),
        )
    if backlogs is None:
        return _to_the_end(_count_cron(schedule, after, now_ms, keep))
    return backlogs.count((schedule, after, now_ms, keep))


def _to_the_end(steps: Generator[None, None, Due]) -> Due:
    """Run a count without a budget (every caller but the scheduler)."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        result: Due = done.value
        return result


def _count_cron(
    schedule: Schedule, after: int, now_ms: int, keep: int
) -> Generator[None, None, Due]:
    """The cron part of `due_slots`, pausing (a bare `yield`) before each slot it takes
    from croniter (about one croniter step each), so a caller can spread it over turns."""
    newest: deque[int] = deque(maxlen=keep)
    count = 0
    first: int | None = None
    for slot in _cron_slots(schedule, after):
        yield
        if slot > now_ms:
            break
        if count >= COUNT_LIMIT:
            # More due than we count (the count says "at least"): the newest `keep` come
            # from a walk back from `now` (bounded by `keep`), so `handled_through` is the
            # real newest due slot and one plan settles the whole backlog. The union also
            # holds the forward walk's newest (all due) should the walk back end early.
            back = yield from _cron_slots_before(schedule, now_ms, after, keep)
            merged = sorted(set(newest).union(back))[-keep:] if keep > 0 else []
            return Due(count + 1, False, first, tuple(merged))  # at least this slot more
        first = slot if first is None else first
        count += 1
        newest.append(slot)
    return Due(count, True, first, tuple(newest))


_T = TypeVar("_T")
BacklogKey = tuple[Schedule, int, int, int]  # (schedule, after, now, keep) of a cron count


class Uncounted(Exception):
    """A budgeted plan stopped where its step budget ran out: wait a loop turn and
    decide again (the count goes on where it stopped)."""


class StepBudget:
    """Croniter steps the plans may take before their caller yields a loop turn; one
    object shared by every plan of a process, refilled by its owner between turns."""

    __slots__ = ("per_turn", "remaining")

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self.remaining = per_turn

    def refill(self) -> None:
        self.remaining = self.per_turn


class Backlogs:
    """The cron counts of one decision that may span several loop turns: those finished
    (a decision asks again for each when it is retried) and those stopped by the budget
    (resumed where they stopped). Results equal the unbudgeted `due_slots`. It also
    keeps each trigger's outcome on the state it was decided on (`remembered`), so a
    retried decision does not plan again the triggers it already planned."""

    __slots__ = ("_counted", "_counting", "_decided", "_decided_on", "budget")

    def __init__(self, budget: StepBudget) -> None:
        self.budget = budget
        self._counted: dict[BacklogKey, Due] = {}
        self._counting: dict[BacklogKey, Generator[None, None, Due]] = {}
        self._decided_on: object = None  # the (immutable) state the outcomes are of
        self._decided: dict[Hashable, Any] = {}

    def remembered(self, state: object, key: Hashable, decide: Callable[[], _T]) -> _T:
        """`decide()`, once per `key` while the state is the same object."""
        if state is not self._decided_on:
            self._decided_on = state
            self._decided = {}
        if key not in self._decided:
            self._decided[key] = decide()
        result: _T = self._decided[key]
        return result

    def count(self, key: BacklogKey) -> Due:
        """The count for `key`, or `Uncounted` when the budget runs out first."""
        done = self._counted.get(key)
        if done is not None:
            return done
        steps = self._counting.pop(key, None) or _count_cron(*key)
        budget = self.budget
        try:
            while True:
                if budget.remaining <= 0:
                    self._counting[key] = steps
                    raise Uncounted
                budget.remaining -= 1
                next(steps)
        except StopIteration as stop:
            result: Due = stop.value
        self._counted[key] = result
        return result


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What to do with the slots due now.

    `fire`: slots to fire, ascending; `catch_up`: those of them that were missed;
    `handled_through`: the newest due slot, which becomes `last_scheduled_at`.
    `missed` > 0 means a `missed_triggers` record with `decision`.
    """

    fire: tuple[int, ...] = ()
    catch_up: frozenset[int] = frozenset()
    handled_through: int | None = None
    missed: int = 0
    missed_exact: bool = True
    first_missed: int | None = None
    last_missed: int | None = None
    decision: str | None = None
    capped: bool = False
    dropped: int = 0


_NOTHING_DUE: Final = FirePlan()  # immutable, so one shared value


def plan_due(
    schedule: Schedule,
    after_ms: int,
    now_ms: int,
    anchor_ms: int,
    *,
    policy: str | None = None,
    grace_ms: int | None = None,
    backlogs: Backlogs | None = None,
) -> FirePlan:
    """The misfire policy. Only the newest due slot may be on time (late by <= grace);
    every other due slot is missed: `skip` drops them, `fire_once` coalesces the backlog
    into one fire (the on-time slot, else the newest missed), `fire_all` replays up to
    FIRE_ALL_CAP of the newest missed ones and reports the rest as dropped. `policy` and
    `grace_ms` override the schedule's (a stopped session's slots: skip, no grace).
    `backlogs`: count cron backlogs within a step budget (see `due_slots`)."""
    step = schedule.interval_ms
    if step is not None and step > 0:
        # An interval timer's usual case (no slot or exactly one due) by arithmetic:
        # the same plan as below, without `Due` (every timer fire plans once or twice).
        after = after_ms if after_ms > anchor_ms else anchor_ms
        if sane_ms(after) and sane_ms(anchor_ms) and sane_ms(now_ms):
            k_first = max(1, (after - anchor_ms) // step + 1)
            k_last = (now_ms - anchor_ms) // step
            if k_last < k_first:
                return _NOTHING_DUE
            if k_last == k_first:
                slot = anchor_ms + k_last * step
                if now_ms - slot <= (schedule.grace_ms if grace_ms is None else grace_ms):
                    return FirePlan(fire=(slot,), handled_through=slot)
    return _plan_due_slots(schedule, after_ms, now_ms, anchor_ms, policy, grace_ms, backlogs)


def _plan_due_slots(
    schedule: Schedule,
    after_ms: int,
    now_ms: int,
    anchor_ms: int,
    policy: str | None,
    grace_ms: int | None,
    backlogs: Backlogs | None = None,
) -> FirePlan:
    """`plan_due` for any schedule and backlog (the reference its fast path must equal)."""
    due = due_slots(schedule, after_ms, now_ms, anchor_ms, FIRE_ALL_CAP + 1, backlogs)
    if due.count == 0:
        return _NOTHING_DUE
    newest = due.newest[-1]
    grace = schedule.grace_ms if grace_ms is None else grace_ms
    on_time = newest if now_ms - newest <= grace else None
    missed_slots = due.newest[:-1] if on_time is not None else due.newest
    missed = due.count - (1 if on_time is not None else 0)
    if missed == 0:
        return FirePlan(fire=(newest,), handled_through=newest)
    policy = policy or schedule.misfire
    fire: tuple[int, ...] = ()
    catch_up: tuple[int, ...] = ()
    if policy == "fire_once":
        fire = (newest,)
        catch_up = () if on_time is not None else (newest,)
    elif policy == "fire_all":
        catch_up = missed_slots[-FIRE_ALL_CAP:]
        fire = catch_up + ((on_time,) if on_time is not None else ())
    elif on_time is not None:
        fire = (on_time,)
    capped = policy == "fire_all" and missed > FIRE_ALL_CAP
    return FirePlan(
        fire=fire,
        catch_up=frozenset(catch_up),
        handled_through=newest,
        missed=missed,
        missed_exact=due.exact,
        first_missed=due.first,
        last_missed=missed_slots[-1] if missed_slots else None,
        decision=policy,
        capped=capped,
        dropped=missed - FIRE_ALL_CAP if capped else 0,
    )


# -- ids and display -----------------------------------------------------------------


def fire_event_id(session_id: str, trigger_id: str, scheduled_ms: int) -> uuid.UUID:
    """The one event id a slot's outcome (fired or skipped) can have, on any node."""
    return uuid.uuid5(FIRE_NAMESPACE, f"slot\x00{session_id}\x00{trigger_id}\x00{scheduled_ms}")


def fire_event_text(session_id: str, trigger_id: str, scheduled_ms: int) -> str:
    """`str(fire_event_id(...))`, built straight from the SHA-1 (`uuid.uuid5`'s steps)
    without a UUID object: the scheduler derives one per fire."""
    name = f"slot\x00{session_id}\x00{trigger_id}\x00{scheduled_ms}".encode()
    return uuid_text(hashlib.sha1(_FIRE_NAMESPACE_BYTES + name).digest(), 5)


def taken_event_text(event_id: str, anchor_ms: int, n: int) -> str:
    """The id an outcome gets when its derived id `event_id` is already stored (a slot
    recorded under the same trigger id before it was removed and added again): derived
    from that id and the trigger's anchor, so every node and retry picks the same one;
    `n` counts up past ids that are taken too."""
    return str(uuid.uuid5(FIRE_NAMESPACE, f"taken\x00{event_id}\x00{anchor_ms}\x00{n}"))


def missed_event_id(session_id: str, trigger_id: str, through_ms: int) -> uuid.UUID:
    return uuid.uuid5(FIRE_NAMESPACE, f"missed\x00{session_id}\x00{trigger_id}\x00{through_ms}")


class TriggerLike(Protocol):
    @property
    def trigger_type(self) -> str: ...
    @property
    def trigger_config(self) -> dict[str, Any]: ...
    @property
    def active(self) -> bool: ...
    @property
    def last_scheduled_at(self) -> int | None: ...


def next_due(trigger: TriggerLike, now_ms: int) -> int | None:
    """The next slot the scheduler will handle (may lie in the past while it catches up);
    None for inactive or non-timer triggers. Without a recorded anchor the schedule
    starts at `now_ms`."""
    if not trigger.active:
        return None
    schedule = parse_schedule(trigger.trigger_type, trigger.trigger_config)
    if schedule is None or not sane_ms(now_ms):
        return None
    anchor = getattr(trigger, "anchor_at", None)
    anchor_ms = anchor if isinstance(anchor, int) else now_ms
    after = trigger.last_scheduled_at if trigger.last_scheduled_at is not None else anchor_ms
    return next_slot(schedule, after, anchor_ms)


def next_fire_at(trigger: TriggerLike, now_ms: int) -> int | None:
    """Epoch ms of the next fire for display: the pending slot when it will still fire on
    time, else the next regular slot after now."""
    due = next_due(trigger, now_ms)
    if due is None or due >= now_ms:
        return due
    schedule = parse_schedule(trigger.trigger_type, trigger.trigger_config)
    assert schedule is not None
    if now_ms - due <= schedule.grace_ms:
        return due
    anchor = getattr(trigger, "anchor_at", None)
    return next_slot(schedule, now_ms, anchor if isinstance(anchor, int) else now_ms)


def next_fire_fields(trigger: TriggerLike, now_ms: int) -> dict[str, Any]:
    """`{next_fire_at (epoch ms), next_fire_in (s)}` for entry points, or `{}`."""
    at = next_fire_at(trigger, now_ms)
    if at is None:
        return {}
    return {"next_fire_at": at, "next_fire_in": max(0.0, (at - now_ms) / 1000)}
