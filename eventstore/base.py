"""The abstract event store every backend implements, and the checks they share.

Backends (SQLite, PostgreSQL) implement the storage primitives; validation of
input and the catch-up-then-live subscription live here once, so both twins
behave the same and the contract test suite can hold them to it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import orjson

from .entropy import random_bytes
from .leases import Leases
from .subscriptions import Subscriptions
from .tail_array import TailArray
from .types import (
    MAX_EVENT_BYTES,
    MAX_EVENT_ID_LENGTH,
    MAX_EVENTS_PER_APPEND,
    MAX_INT64,
    MAX_STREAM_ID_LENGTH,
    MAX_TYPE_LENGTH,
    AppendResult,
    ChainHead,
    Checkpoint,
    EncodedEvent,
    Expected,
    ExpectedState,
    InvalidEvent,
    JsonRow,
    JsonTailPage,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
    StreamInfo,
    TailPage,
    encodable_text,
)

logger = logging.getLogger("hivelog.store")

SUBSCRIBE_BATCH = 500
SUBSCRIBE_POLL_SECONDS = 1.0


def encode_json(value: Any, what: str) -> bytes:
    """JSON bytes for a payload; bytes are taken as already-encoded JSON and checked."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"{what} bytes are not valid JSON: {exc}") from None
        return raw
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise InvalidEvent(f"{what} is not JSON-serialisable: {exc}") from None


def validate_stream_id(stream_id: object) -> str:
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidEvent("stream_id must be a non-empty string")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidEvent(f"stream_id longer than {MAX_STREAM_ID_LENGTH} characters")
    if "\x00" in stream_id:
        raise InvalidEvent("stream_id contains a NUL character")
    return encodable_text(stream_id, "stream_id")


def validate_checkpoint_name(name: object) -> str:
    """A checkpoint's name: bound as a text key (bytes or a tuple would be stored under a
    key no later load finds, or fail every append of the group commit it rode in)."""
    if not isinstance(name, str) or not name or len(name) > MAX_STREAM_ID_LENGTH:
        raise InvalidEvent(f"checkpoint name must be 1-{MAX_STREAM_ID_LENGTH} characters")
    return encodable_text(name, "checkpoint name")


def validate_expected(expected: object) -> Expected:
    if isinstance(expected, ExpectedState):
        return expected
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidEvent(f"expected must be ANY, NO_STREAM, EXISTS or an int, not {expected!r}")
    if not 0 <= expected <= MAX_INT64:
        raise InvalidEvent(f"expected version must be in 0..2**63-1, got {expected}")
    return expected


def encode_events(events: Sequence[NewEvent]) -> list[EncodedEvent]:
    """Validate a batch completely before anything is written."""
    if isinstance(events, NewEvent):
        raise InvalidEvent("append takes a list of NewEvent, not a single NewEvent")
    if not events:
        raise InvalidEvent("append needs at least one event")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise InvalidEvent(
            f"{len(events)} events in one append; the limit is {MAX_EVENTS_PER_APPEND}"
        )
    encoded: list[EncodedEvent] = []
    seen: set[str] = set()
    for event in events:
        if not isinstance(event, NewEvent):
            raise InvalidEvent(f"expected NewEvent, got {type(event).__name__}")
        if not isinstance(event.type, str) or not event.type.strip():
            raise InvalidEvent("event type must be a non-empty string")
        if len(event.type) > MAX_TYPE_LENGTH:
            raise InvalidEvent(f"event type longer than {MAX_TYPE_LENGTH} characters")
        encodable_text(event.type, "event type")
        event_id = _event_id_text(event.event_id)
        if event_id in seen:
            raise InvalidEvent(f"event id {event_id} appears twice in one append")
        seen.add(event_id)
        data = encode_json(event.data, "data")
        metadata = None if event.metadata is None else encode_json(event.metadata, "metadata")
        size = len(data) + (len(metadata) if metadata else 0)
        if size > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event of {size} bytes; the limit is {MAX_EVENT_BYTES}")
        encoded.append(EncodedEvent(event_id, event.type, data, metadata))
    return encoded


def new_event_id() -> str:
    """A default event id: UUIDv7 text (RFC 9562), a millisecond timestamp then 74
    random bits. Ids made later sort later, so the unique index on event ids grows
    at its right edge instead of touching a random page per event (measured on the
    SQLite group commit: 1.33x the events per second of random version-4 ids).
    Built from the OS's random bytes (`entropy.random_bytes`, fetched in bulk) without a
    UUID object (every append without ids pays it once per event). Ids given by
    callers are kept as they are."""
    millis = time.time_ns() // 1_000_000
    return uuid_text(millis.to_bytes(6, "big") + random_bytes(10), 7)


def uuid_text(raw: bytes, version: int) -> str:
    """The canonical text of the UUID whose 16 bytes are `raw` with `version` and the
    RFC 4122 variant set: `str(uuid.UUID(...))` without building the object, which
    costs more than the rest of an id's making on the append and fire paths."""
    b = bytearray(raw[:16])
    b[6] = b[6] & 0x0F | version << 4
    b[8] = b[8] & 0x3F | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _event_id_text(event_id: object) -> str:
    if event_id is None:
        return new_event_id()
    if isinstance(event_id, uuid.UUID):
        return str(event_id)
    if not isinstance(event_id, str) or not event_id:
        raise InvalidEvent("event_id must be a UUID or a non-empty string")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise InvalidEvent(f"event_id longer than {MAX_EVENT_ID_LENGTH} characters")
    return encodable_text(event_id, "event_id")


def validate_count(name: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT64:
        raise InvalidEvent(f"{name} must be an int in 0..2**63-1, got {value!r}")
    return value


def validate_window(
    stream_id: object, limit: object, after_position: object, before_position: object
) -> str:
    """The arguments of `read_positions`, checked once for every backend."""
    checked = validate_stream_id(stream_id)
    validate_count("limit", limit)
    validate_count("after_position", after_position, allow_none=True)
    validate_count("before_position", before_position, allow_none=True)
    return checked


class Doorbell:
    """Wakes every waiter after a commit, without lost wake-ups.

    A waiter takes `ticket()` *before* reading, then waits on it if the read was
    empty: a commit between the read and the wait has already set that ticket.

    A ring may say how far the log is committed (`ring(head)`: every position up to
    `head` is in the log). `head` is the highest such position heard so far, and
    `unplaced` counts rings that could not say (another process's commit, a lost
    LISTEN connection): a reader that has already seen up to `head`, and heard no
    unplaced ring since it last read, knows a read would find nothing new.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.head = 0
        self.unplaced = 0

    def ticket(self) -> asyncio.Event:
        return self._event

    def ring(self, head: int | None = None) -> None:
        if head is None:
            self.unplaced += 1
        elif head > self.head:
            self.head = head
        event, self._event = self._event, asyncio.Event()
        event.set()

    def nothing_new(self, seen: int, unplaced: int) -> bool:
        """Whether a reader that has seen up to `seen`, and took `unplaced` before its
        last read, would find nothing new by reading again."""
        return self.unplaced == unplaced and self.head <= seen


async def wait_for_ticket(ticket: asyncio.Event, seconds: float) -> None:
    """Wait for a commit, or for `seconds` (the poll interval), whichever is first."""
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
    # arrives as the ticket is set, and a cancelled follower would then never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await ticket.wait()


class EventStore(abc.ABC):
    """An append-only log of streams. See README "The store API" for the contract."""

    doorbell: Doorbell
    poll_seconds: float = SUBSCRIBE_POLL_SECONDS
    # Commit hooks: called once per committed transaction with (appends in it, seconds
    # the commit took). Both backends call them, so /metrics sees every write.
    on_commit: list[Callable[[int, float], None]]

    def _notify_commit(self, appends: int, seconds: float) -> None:
        """Tell the hooks; one that raises is logged and skipped: the commit is durable
        and its callers must still hear so (they would otherwise wait forever)."""
        for hook in self.on_commit:
            try:
                hook(appends, seconds)
            except Exception:
                logger.exception("on_commit hook %r failed", hook)

    @abc.abstractmethod
    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected: Expected = ExpectedState.ANY
    ) -> AppendResult:
        """Append atomically; returns only once the events are durable."""

    @abc.abstractmethod
    async def tail(self, stream_id: str, n: int) -> TailPage:
        """The newest `n` events (oldest first) and the exact stream length, in O(n)."""

    async def tail_json(self, stream_id: str, n: int) -> JsonTailPage:
        """`tail` with only what a response body needs (position, version, type, bytes).

        Same contract as `tail`; backends override it with a leaner query, since
        building full RecordedEvents costs more than the index walk itself.
        """
        page = await self.tail(stream_id, n)
        rows = [JsonRow(e.position, e.version, e.type, e.data_json) for e in page.events]
        return JsonTailPage(rows, page.total)

    async def tail_array(self, stream_id: str, n: int) -> TailArray:
        """The newest `n` events as one served JSON array with the stream's head row, in
        one read (see tail_array.py). Both backends build it in the database; a store
        that cannot answers "not spliced" without reading, and callers use `tail_json`."""
        return TailArray(validate_stream_id(stream_id), 0, 0, 0, 0, 0, None, None)

    @abc.abstractmethod
    async def read(
        self,
        stream_id: str,
        after_version: int = 0,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Forwards: versions > after_version, oldest first.

        Backwards: newest first, versions < after_version (from the head when 0).
        """

    @abc.abstractmethod
    async def read_positions(
        self,
        stream_id: str,
        *,
        after_position: int | None = None,
        before_position: int | None = None,
        limit: int,
        newest_first: bool = False,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """A window of one stream by global position, optionally only some types."""

    @abc.abstractmethod
    async def read_all(
        self, after_position: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """The global log after a position, in commit order."""

    @abc.abstractmethod
    async def delete_stream(self, stream_id: str) -> None:
        """Tombstone the stream and physically erase its events."""

    @abc.abstractmethod
    async def stream_info(self, stream_id: str) -> StreamInfo | None:
        """The stream's head row, or None if it never existed."""

    async def archived_after(self, after_position: int, stream_id: str | None = None) -> bool:
        """Whether an event past `after_position` (of `stream_id`, else of any stream not
        erased) was archived (`hivelog archive`): a reader resuming there would skip it
        without a sign. False here: a backend that cannot archive."""
        validate_count("after_position", after_position)
        if stream_id is not None:
            validate_stream_id(stream_id)
        return False

    # ---- archiving (truncate-before; tools/archive.py): both backends implement it ----
    # Each backend reads per stream (id, head, first live version, newest version at or
    # below the checkpoint, newest version recorded before the age) and `plan_cuts`
    # turns those rows into the plan, so both cut by the same rule.

    async def archive_plan(
        self,
        *,
        max_position: int,
        recorded_before_us: int | None,
        keep_last: int | None,
        stream_id: str | None = None,
    ) -> list[tuple[str, int, int]]:
        """(stream, first live version, cut) per live session stream with a prefix to
        archive, taking only events at or below `max_position`."""
        raise NotImplementedError(f"{type(self).__name__} cannot archive")

    async def archive_rows(self, stream_id: str, before_version: int) -> list[tuple[Any, ...]]:
        """The live events below the cut, with digest and link, in backup row order
        (position, stream, version, id, type, data, metadata, recorded_at_us, digest,
        chain)."""
        raise NotImplementedError(f"{type(self).__name__} cannot archive")

    async def archive_before(self, stream_id: str, before_version: int, expected: int) -> int:
        """Remove the versions below `before_version` in one transaction, their links
        kept; refused (nothing changes) unless exactly `expected` events go."""
        raise NotImplementedError(f"{type(self).__name__} cannot archive")

    async def restore_archived(self, stream_id: str, rows: list[tuple[Any, ...]]) -> int:
        """Put archived rows back, each checked against the link it left behind."""
        raise NotImplementedError(f"{type(self).__name__} cannot archive")

    @abc.abstractmethod
    async def head_position(self) -> int:
        """The global position of the newest committed event (0 when empty)."""

    @abc.abstractmethod
    async def chain_head(self) -> ChainHead:
        """The newest link of the hash chain (position 0 and 32 zero bytes when empty)."""

    @abc.abstractmethod
    async def save_checkpoint(self, name: str, position: int, state: bytes) -> None:
        """Store a projection's state and position together, atomically and durably."""

    @abc.abstractmethod
    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        """The last checkpoint saved under `name`."""

    _closed = False  # set when closing starts: new work is refused from then on
    _closing: asyncio.Future[None] | None = None

    async def close(self) -> None:
        """Finish in-flight appends and release connections. One closing runs to its
        end even if a caller is cancelled meanwhile (a half-closed store would keep its
        connections, or cancel the batch in flight); every call waits for it."""
        if self._closing is None:
            self._closed = True
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    @abc.abstractmethod
    async def _close(self) -> None:
        """The closing itself, run once: what is queued, then the connections."""

    _leases: Leases | None = None

    @property
    def leases(self) -> Leases:
        """The store's lease table (eventstore/leases.py), attached when the store opens."""
        if self._leases is None:
            raise NotImplementedError(f"{type(self).__name__} has no lease table")
        return self._leases

    _subscriptions: Subscriptions | None = None

    @property
    def subscriptions(self) -> Subscriptions:
        """The store's consumer-group tables (eventstore/subscriptions.py)."""
        if self._subscriptions is None:
            raise NotImplementedError(f"{type(self).__name__} has no consumer-group tables")
        return self._subscriptions

    async def _raise_if_deleted(self, stream_id: str) -> None:
        """An empty read of a tombstoned stream is StreamDeleted, not an empty list."""
        info = await self.stream_info(stream_id)
        if info is not None and info.deleted:
            raise StreamDeleted(stream_id)

    async def _total(self, stream_id: str, oldest_first: Sequence[JsonRow | RecordedEvent]) -> int:
        """The stream length, consistent with a page read by one statement.

        Versions are gapless from 1, so the newest version in the page *is* the total,
        as of the same snapshot; only an empty page needs the stream's head row.
        """
        if oldest_first:
            return oldest_first[-1].version
        info = await self.stream_info(stream_id)
        if info is None:
            return 0
        if info.deleted:
            raise StreamDeleted(stream_id)
        return info.head_version

    async def subscribe(
        self,
        after_position: int = 0,
        *,
        batch: int = SUBSCRIBE_BATCH,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after `after_position`: catch-up from the log, then live.

        Reads in bounded batches (the buffer holds at most `batch` events), wakes on
        the in-process doorbell after each commit, and polls every `poll_seconds`
        as a safety net for commits it did not hear (other processes).
        """
        position = validate_count("after_position", after_position)
        assert position is not None
        while True:
            ticket = self.doorbell.ticket()
            # With a filter, note the head first: if nothing matches, everything up
            # to that head has been seen and the position can move past it.
            head = await self.head_position() if types else 0
            page = await self.read_all(after_position=position, limit=batch, types=types)
            if page:
                for event in page:
                    position = event.position
                    yield event
                continue
            if head > position:
                position = head
                continue
            await wait_for_ticket(ticket, self.poll_seconds)


ArchiveFacts = tuple[Any, Any, Any, Any, Any]  # (stream, head, first, below_checkpoint, older)


def plan_cuts(
    rows: Iterable[ArchiveFacts], recorded_before_us: int | None, keep_last: int | None
) -> list[tuple[str, int, int]]:
    """(stream, first live version, cut) for each stream with a prefix to archive: below
    the checkpoint, and below the age or the newest `keep_last` versions (pure)."""
    plan = []
    for sid, head, first, below_checkpoint, older in rows:
        if first is None or below_checkpoint is None:
            continue
        cut = below_checkpoint + 1
        if recorded_before_us is not None:
            cut = min(cut, (older or 0) + 1)
        if keep_last is not None:
            cut = min(cut, head - keep_last + 1)
        if cut > first:
            plan.append((str(sid), int(first), int(cut)))
    return plan
