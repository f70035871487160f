"""Opening the store for a tool, and reading the log in bounded pages.

Tools that only read refuse to create a SQLite file that is not there: a typo in
`--db` must not look like an empty, healthy log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson

from eventstore import (
    EventStore,
    EventStoreError,
    InvalidEvent,
    RecordedEvent,
    StoreRefused,
    open_store,
)
from eventstore.types import EPOCH

from .config import db_url
from .console import EXIT_PROBLEMS, EXIT_USAGE, error

PAGE = 2000


class UsageError(Exception):
    """Bad arguments or an unusable --db: exit code 2."""


def resolve_url(cli_value: str | None, *, must_exist: bool) -> str:
    """The store URL; for read-only tools a SQLite file must already exist."""
    url = db_url(cli_value)
    if must_exist and url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.is_file():
            raise UsageError(f"no database at {path}")
    return url


async def connect(url: str) -> EventStore:
    try:
        return await open_store(url)
    except InvalidEvent as exc:
        raise UsageError(str(exc)) from None
    except ModuleNotFoundError as exc:
        if exc.name == "eventstore.postgres":
            raise UsageError("the PostgreSQL backend is not in this build") from None
        raise


def run_tool(main: Coroutine[Any, Any, int]) -> int:
    """Run a tool's coroutine; usage errors exit 2, Ctrl-C exits 130."""
    try:
        return asyncio.run(main)
    except (UsageError, StoreRefused) as exc:  # StoreRefused: the file was not touched
        error(str(exc))
        return EXIT_USAGE
    except _unreachable() as exc:  # a --db naming no database, a refused login, no server
        error(f"cannot open the store: {type(exc).__name__}: {exc}")
        return EXIT_USAGE
    except EventStoreError as exc:  # e.g. another writer moved a stream under an import
        error(str(exc))
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        return 130


def _unreachable() -> tuple[type[Exception], ...]:
    """The errors of a PostgreSQL URL that leads nowhere (a traceback before)."""
    try:
        import asyncpg
    except ImportError:  # a build without the PostgreSQL backend
        return (ConnectionRefusedError,)
    return (
        ConnectionRefusedError,
        asyncpg.InvalidCatalogNameError,
        asyncpg.InvalidAuthorizationSpecificationError,
    )


async def log_pages(
    store: EventStore,
    *,
    after_position: int = 0,
    types: Sequence[str] | None = None,
    page: int = PAGE,
) -> AsyncIterator[list[RecordedEvent]]:
    """The global log after a position, page by page (memory bounded by `page`)."""
    position = after_position
    while True:
        events = await store.read_all(after_position=position, limit=page, types=types)
        if not events:
            return
        yield events
        position = events[-1].position


async def stream_pages(
    store: EventStore,
    stream_id: str,
    *,
    after_position: int = 0,
    before_position: int | None = None,
    types: Sequence[str] | None = None,
    page: int = PAGE,
) -> AsyncIterator[list[RecordedEvent]]:
    """One stream's events by position, page by page."""
    position = after_position
    while True:
        events = await store.read_positions(
            stream_id,
            after_position=position,
            before_position=before_position,
            limit=page,
            types=types,
        )
        if not events:
            return
        yield events
        position = events[-1].position


def iso_us(recorded_at_us: int) -> str:
    """Microseconds since the epoch as ISO-8601 UTC with a Z."""
    moment = EPOCH + dt.timedelta(microseconds=recorded_at_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_jsonl(event: RecordedEvent) -> bytes:
    """Our full envelope as one JSON line: where the event sits, then its stored bytes.

    The payload and metadata bytes are spliced in untouched (never re-encoded), so
    an export carries exactly what the log holds.
    """
    head = orjson.dumps(
        {
            "position": event.position,
            "stream_id": event.stream_id,
            "version": event.version,
            "event_id": event.event_id,
            "type": event.type,
            "recorded_at": iso_us(event.recorded_at_us),
        }
    )
    metadata = event.metadata_json if event.metadata_json is not None else b"null"
    return b"".join((head[:-1], b',"metadata":', metadata, b',"data":', event.data_json, b"}\n"))
