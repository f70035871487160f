"""Opening a store from a URL: `sqlite:///path` or `postgresql://...`."""

from __future__ import annotations

from .base import EventStore
from .types import InvalidEvent


async def open_store(url: str) -> EventStore:
    """Open (and create or migrate) the store the URL names."""
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStore, sqlite_path_from_url

        return await SQLiteStore.open(sqlite_path_from_url(url))
    if url.startswith(("postgresql://", "postgres://")):
        from .pg_leases import PostgresLeases
        from .pg_subscriptions import PostgresSubscriptions
        from .postgres import PostgresStore

        pg = await PostgresStore.open(url)
        pg._leases = PostgresLeases(pg.pool, pg.names.q)
        pg._subscriptions = PostgresSubscriptions(pg.pool, pg.names.q)
        store: EventStore = pg
        return store
    raise InvalidEvent(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://...")
