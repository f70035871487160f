"""Durable consumer groups: the tables' interface, shared by the SQLite and PostgreSQL twins.

A group has settings and a *cursor*: the global position up to which the log has
been turned into delivery rows. A claim, in one transaction, (1) tops the group's
buffer up with delivery rows for matching events after the cursor, (2) asks the
group's rules (pure functions, api/core/subscriptions.py) which rows may go out
now and which must be parked, (3) marks the chosen rows in flight with a deadline.
An ack deletes the row, in a committed transaction, before it is answered.

Delivery ids are `"<position>:<attempt>"`: an ack or nack counts only for the
delivery currently out, so a worker whose delivery timed out and was handed to
another cannot ack or nack the newer one.

Rows: `ready` (waiting; `deadline` = not before), `inflight` (`deadline` = ack
deadline), `parked`. Acked and skipped rows are deleted.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import orjson

from .types import MAX_INT64, InvalidEvent, RecordedEvent

# As session ids: 1-128 of [A-Za-z0-9_.-], starting alphanumeric, no "..".
GROUP_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_\-]|\.(?!\.)){0,127}$")
READY: Final = "ready"
INFLIGHT: Final = "inflight"
PARKED: Final = "parked"
# How far past the cursor one claim looks for matching events (bounds a sparse scan).
SCAN_WINDOW: Final = 20_000
MAX_BUFFER: Final = 10_000

Ordering = Literal["session", "none"]
NackAction = Literal["retry", "park", "skip"]


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """What a group delivers and how; `types`/`sessions` None = all."""

    types: tuple[str, ...] | None = None
    sessions: tuple[str, ...] | None = None
    ack_timeout_seconds: float = 30.0
    max_retries: int = 5
    max_in_flight: int = 1000
    ordering: Ordering = "session"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "types": None if self.types is None else list(self.types),
                "sessions": None if self.sessions is None else list(self.sessions),
                "ack_timeout_seconds": self.ack_timeout_seconds,
                "max_retries": self.max_retries,
                "max_in_flight": self.max_in_flight,
                "ordering": self.ordering,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> GroupSettings:
        value: dict[str, Any] = orjson.loads(raw)
        types, sessions = value.get("types"), value.get("sessions")
        return cls(
            types=None if types is None else tuple(types),
            sessions=None if sessions is None else tuple(sessions),
            ack_timeout_seconds=float(value["ack_timeout_seconds"]),
            max_retries=int(value["max_retries"]),
            max_in_flight=int(value["max_in_flight"]),
            ordering=value["ordering"],
        )


@dataclass(frozen=True, slots=True)
class Group:
    """A group as stored, with its counts (one consistent read)."""

    name: str
    settings: GroupSettings
    cursor: int
    ready: int
    in_flight: int
    parked: int
    oldest_pending: int | None  # lowest position still ready or in flight

    @property
    def checkpoint(self) -> int:
        """Every matching event at or below this position is acked, skipped or parked."""
        if self.oldest_pending is None:
            return self.cursor
        return self.oldest_pending - 1


@dataclass(frozen=True, slots=True)
class Pending:
    """A ready or in-flight delivery row, what the rules decide on."""

    position: int
    session_id: str
    state: str
    attempt: int
    deadline: float


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    claim: list[int]  # positions to hand out now, in order
    park: list[tuple[int, str]]  # positions to park, with the reason


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    attempt: int
    event: RecordedEvent


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    position: int
    attempts: int
    reason: str
    event: RecordedEvent | None  # None when the session was erased meanwhile


class Rules(Protocol):
    """The group's decisions, pure (api/core/subscriptions.py implements them)."""

    def plan_claim(
        self, settings: GroupSettings, pending: Sequence[Pending], now: float, limit: int
    ) -> ClaimPlan: ...

    def after_failure(self, settings: GroupSettings, attempt: int) -> str:
        """READY (retry again) or PARKED, for a delivery that failed on `attempt`."""
        ...

    def buffer_target(self, settings: GroupSettings, in_flight: int, limit: int) -> int:
        """How many ready + in-flight rows a claim keeps materialised."""
        ...


def parse_delivery_id(text: str) -> tuple[int, int] | None:
    """`(position, hand-out)` of one of our delivery ids, or None for a string that is
    not one: `P:N:TAG` (TAG 8 hex digits drawn per hand-out), or `P:N` as ids were made
    before TAG (still acked while their rows are in flight).

    ASCII digits only and both numbers within int64: `str.isdigit` also accepts '²'
    (int() then raises) and 20 digits overflow the column; either, raised inside
    SQLite's writer job, failed the whole group commit with every client's appends.
    """
    if len(text) > 48 or not text.isascii():
        return None
    parts = text.split(":")
    if len(parts) == 3 and DELIVERY_TAG.fullmatch(parts[2]):
        parts = parts[:2]
    if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    head, tail = int(parts[0]), int(parts[1])
    if head > MAX_INT64 or tail > MAX_INT64:
        return None
    return head, tail


# A delivery id's last part, drawn by the database at each hand-out: a group deleted and
# made again under its name starts its hand-out counts over, so `P:N` alone named the old
# group's deliveries too, and a worker still holding one acked the new group's event,
# which then counted as done and was never processed.
DELIVERY_TAG = re.compile(r"[0-9a-f]{8}")


def held_up(
    plan: ClaimPlan, settings: GroupSettings, in_flight: int, buffered: int, target: int
) -> bool:
    """Whether a claim should buffer more rows before answering: it hands out nothing
    though the group may have more in flight, and the buffer is full to its target but
    under MAX_BUFFER. Every buffered row is then held up (one session's backlog, in
    session order), and without a further look the sessions after it would starve."""
    blocked = not plan.claim and in_flight < settings.max_in_flight
    return blocked and target <= buffered < MAX_BUFFER


def validate_group_name(name: object) -> str:
    if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
        raise InvalidEvent(
            "group name must be 1-128 of [A-Za-z0-9_.-], starting alphanumeric, no .."
        )
    return name


def validate_start_after(start_after: int | None) -> int | None:
    """A new group's cursor: None (the head) or a position both backends can store."""
    if start_after is not None and not 0 <= start_after <= MAX_INT64:
        raise InvalidEvent(f"a group's start must be a position in 0..2**63-1, got {start_after}")
    return start_after


def matches(settings: GroupSettings, stream_id: str, event_type: str) -> bool:
    """Whether an event of a session stream belongs to the group (system streams never do)."""
    if stream_id.startswith("$"):
        return False
    if settings.types is not None and event_type not in settings.types:
        return False
    return settings.sessions is None or stream_id in settings.sessions


class Subscriptions(abc.ABC):
    """The consumer-group tables of one store. `now` is epoch seconds, from the caller's clock."""

    @abc.abstractmethod
    async def put_group(self, name: str, settings: GroupSettings, start_after: int | None) -> bool:
        """Create (True) or update the settings of (False) a group.

        `start_after`: the cursor of a new group (None = the log's head now); an
        update keeps the cursor and every delivery.
        """

    @abc.abstractmethod
    async def get_group(self, name: str) -> Group | None: ...

    @abc.abstractmethod
    async def list_groups(self) -> list[Group]: ...

    @abc.abstractmethod
    async def delete_group(self, name: str) -> bool:
        """Remove the group and its deliveries; False when there was none."""

    @abc.abstractmethod
    async def claim(
        self, name: str, worker: str, limit: int, now: float, rules: Rules
    ) -> list[Delivery] | None:
        """Hand out up to `limit` deliveries (None: no such group)."""

    @abc.abstractmethod
    async def ack(self, name: str, delivery_ids: Sequence[str]) -> list[str] | None:
        """Delete the deliveries that are out under these ids; returns the unknown ids."""

    @abc.abstractmethod
    async def nack(
        self,
        name: str,
        delivery_ids: Sequence[str],
        action: NackAction,
        reason: str,
        now: float,
        delay: float,
        rules: Rules,
    ) -> list[str] | None:
        """Retry (after `delay`, or park when out of retries), park, or skip; the unknown ids."""

    @abc.abstractmethod
    async def parked(self, name: str, limit: int) -> list[ParkedMessage] | None: ...

    @abc.abstractmethod
    async def replay_parked(self, name: str, now: float) -> int | None:
        """Make every parked delivery ready again with a fresh retry count."""
