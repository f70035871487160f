"""hivelog's event store: append-only streams with a commit-ordered global log."""

from .base import EventStore
from .factory import open_store
from .types import (
    ANY,
    EXISTS,
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_APPEND,
    NO_STREAM,
    AppendResult,
    Checkpoint,
    DuplicateEventId,
    EventStoreError,
    Expected,
    ExpectedState,
    InvalidEvent,
    NewEvent,
    RecordedEvent,
    StreamDeleted,
    StreamInfo,
    TailPage,
    WrongExpectedVersion,
)

__all__ = [
    "ANY",
    "EXISTS",
    "MAX_EVENTS_PER_APPEND",
    "MAX_EVENT_BYTES",
    "NO_STREAM",
    "AppendResult",
    "Checkpoint",
    "DuplicateEventId",
    "EventStore",
    "EventStoreError",
    "Expected",
    "ExpectedState",
    "InvalidEvent",
    "NewEvent",
    "RecordedEvent",
    "StreamDeleted",
    "StreamInfo",
    "TailPage",
    "WrongExpectedVersion",
    "open_store",
]
