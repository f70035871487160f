"""Read-only checks a command runs before it opens a store for writing.

`hivelog serve` calls `verify_store` before uvicorn starts, so a database it must
not touch (foreign, written by a newer hivelog, damaged) ends the command with a
clear message and exit code 2 instead of a failed lifespan; the store's own `open`
repeats the same checks, so nothing else can get past them either.
"""

from __future__ import annotations

from .types import InvalidEvent, StoreRefused


async def verify_store(url: str) -> None:
    """Raise StoreRefused when the store at `url` must not be opened; writes nothing."""
    if url.startswith("sqlite:"):
        from .sqlite import MIGRATIONS, sqlite_path_from_url
        from .sqlite_verify import inspect_file

        inspect_file(sqlite_path_from_url(url), len(MIGRATIONS))
        return
    if url.startswith(("postgresql://", "postgres://")):
        import asyncpg

        from .pg_schema import MIGRATIONS as PG_MIGRATIONS
        from .pg_schema import SchemaNames, current_version, has_foreign_tables
        from .postgres import parse_postgres_url

        dsn, schema, _ = parse_postgres_url(url)
        names = SchemaNames.for_schema(schema)
        conn = await asyncpg.connect(dsn)
        try:
            version = await current_version(conn, names)
            if version > len(PG_MIGRATIONS):
                raise StoreRefused(
                    f"schema {schema!r} was written by a newer hivelog (schema version "
                    f"{version}; this one knows up to {len(PG_MIGRATIONS)}); upgrade hivelog"
                )
            if version == 0 and await has_foreign_tables(conn, names):
                raise StoreRefused(f"schema {schema!r} holds tables but is not a hivelog log")
        finally:
            await conn.close()
        return
    raise InvalidEvent(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://...")
