"""The store contract on the PostgreSQL backend, plus what only PostgreSQL has."""

from __future__ import annotations

import pytest

from eventstore import EventStore, open_store
from tests.pg import fresh_url, pg_dsn  # noqa: F401
from tests.store_contract import StoreContract

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, pg_dsn: str) -> None:  # noqa: F811
        self.dsn = pg_dsn

    async def open_fresh(self) -> EventStore:
        return await open_store(fresh_url(self.dsn))
