"""Value types and errors of the event store: what goes in, what comes out.

Events are stored as JSON bytes. A `RecordedEvent` keeps those bytes and decodes
them only when `.data` / `.metadata` is asked for, so an HTTP layer can pass the
stored bytes straight through to a response body.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

# Limits; documented in the README. Exceeding one raises InvalidEvent and writes nothing.
MAX_EVENTS_PER_APPEND: Final = 10_000
MAX_EVENT_BYTES: Final = 1024 * 1024  # encoded data + metadata of one event
MAX_TYPE_LENGTH: Final = 256
MAX_STREAM_ID_LENGTH: Final = 256
MAX_EVENT_ID_LENGTH: Final = 128
MAX_INT64: Final = 2**63 - 1  # versions, positions, counts: what both backends store
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ExpectedState(enum.Enum):
    """The non-numeric expected-version states, as in KurrentDB."""

    ANY = "any"
    NO_STREAM = "no_stream"
    EXISTS = "exists"

    def __repr__(self) -> str:
        return self.name


ANY: Final = ExpectedState.ANY
NO_STREAM: Final = ExpectedState.NO_STREAM
EXISTS: Final = ExpectedState.EXISTS

Expected = ExpectedState | int


class EventStoreError(Exception):
    """Base of every error the store raises on purpose."""


class InvalidEvent(EventStoreError, ValueError):
    """Input the store refuses before touching storage (nothing is written)."""


def encodable_text(text: str, what: str) -> str:
    """`text` if it can be stored (UTF-8: no lone surrogate, which Python strings allow
    and every encoder refuses, failing the whole group commit it rode in), and the same
    on both backends: no NUL, which PostgreSQL's text cannot hold (a 500 there, where
    SQLite stored it)."""
    if "\x00" in text:
        raise InvalidEvent(f"{what} contains a NUL character")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidEvent(f"{what} is not valid Unicode (a lone surrogate)") from None
    return text


class WrongExpectedVersion(EventStoreError):
    """The stream was not in the state the append expected."""

    def __init__(self, stream_id: str, expected: Expected, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual  # current head version; 0 = the stream has no events
        super().__init__(
            f"stream {stream_id!r}: expected version {expected!r}, current version is {actual}"
        )


class StreamDeleted(EventStoreError):
    """The stream was deleted (tombstoned); it can be neither read nor appended to."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} is deleted")


class StoreUnavailable(EventStoreError):
    """The storage cannot take writes right now (disk full, I/O error, database unreachable).

    The same call may succeed later, so callers answer "try again" (HTTP 503 with
    Retry-After) rather than "bug" (500). Nothing is committed when the storage refused
    the write (disk full, I/O error); after a lost connection the outcome is unknown,
    so retry with the same event ids (retries are idempotent).
    """


class DuplicateEventId(EventStoreError):
    """An event id is already recorded somewhere that does not make this append a retry."""

    def __init__(self, stream_id: str, event_id: str, detail: str) -> None:
        self.stream_id = stream_id
        self.event_id = event_id
        super().__init__(f"event id {event_id} cannot be appended to {stream_id!r}: {detail}")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. `data`/`metadata` are JSON values, or bytes already holding JSON."""

    type: str
    data: Any = None
    metadata: Any = None
    event_id: str | uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A validated NewEvent, ready for a backend: ids as text, payloads as JSON bytes."""

    event_id: str
    type: str
    data: bytes
    metadata: bytes | None


class RecordedEvent(NamedTuple):
    """An event as stored. `data_json`/`metadata_json` are the stored bytes, untouched.

    A tuple, so a page of thousands is built at C speed straight from database rows;
    `data`, `metadata` and `recorded_at` are computed on access (nothing is decoded
    unless asked for, and HTTP responses pass `data_json` through).
    """

    stream_id: str
    version: int
    position: int
    event_id: str
    type: str
    data_json: bytes
    metadata_json: bytes | None
    recorded_at_us: int  # microseconds since the Unix epoch, UTC

    @property
    def data(self) -> Any:
        return orjson.loads(self.data_json)

    @property
    def metadata(self) -> Any:
        return None if self.metadata_json is None else orjson.loads(self.metadata_json)

    @property
    def recorded_at(self) -> dt.datetime:
        """The commit time as an aware UTC datetime."""
        return EPOCH + dt.timedelta(microseconds=self.recorded_at_us)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed. `last_position` is the global position of its last event.

    `written` is False when the append was a retry answered with the original result
    (its ids were stored already): the events are where the result says, but this call
    wrote nothing. It takes no part in equality, so a retry's result equals the original."""

    stream_id: str
    first_version: int
    last_version: int
    last_position: int
    written: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class TailPage:
    """The newest events of a stream, oldest first, and the exact number of events in it."""

    events: list[RecordedEvent]
    total: int


class JsonRow(NamedTuple):
    """The part of an event an HTTP response needs: where it is, and its stored bytes."""

    position: int
    version: int
    type: str
    data_json: bytes


@dataclass(frozen=True, slots=True)
class JsonTailPage:
    """`tail` for serving: rows oldest first, and the exact number of events in the stream."""

    rows: list[JsonRow]
    total: int


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The head row of a stream."""

    stream_id: str
    head_version: int
    head_position: int
    deleted: bool
    erased_events: int
    truncated_before: int = 0  # versions below it were archived (0: none)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A projection's saved state and the global position it has folded up to."""

    name: str
    position: int
    state: bytes


class StoreRefused(EventStoreError):
    """The database is not one this hivelog may open (foreign, newer, damaged); untouched."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest link of the hash chain: write it down to prove later nothing before changed."""

    position: int
    hash: bytes

    def to_dict(self) -> dict[str, object]:
        return {"position": self.position, "hash": self.hash.hex()}
