"""The consumer-group contract on both backends, plus what only PostgreSQL has."""

from __future__ import annotations

import tempfile

import pytest

from api.core.subscriptions import RULES
from eventstore import EventStore, open_store
from eventstore.subscriptions import GroupSettings
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.subscriptions_contract import T0, SubscriptionsContract, ev


class TestSQLiteSubscriptions(SubscriptionsContract):
    def new_location(self) -> str:
        return f"sqlite:///{tempfile.mkdtemp(prefix='hivelog-subs-')}/store.db"

    async def open_at(self, location: str) -> EventStore:
        return await open_store(location)


@pytest.mark.postgres
class TestPostgresSubscriptions(SubscriptionsContract):
    @pytest.fixture(autouse=True)
    def _database(self, pg_dsn: str) -> None:  # noqa: F811
        self.dsn = pg_dsn

    def new_location(self) -> str:
        return fresh_url(self.dsn)

    async def open_at(self, location: str) -> EventStore:
        return await open_store(location)


@pytest.mark.postgres
async def test_two_nodes_share_a_group(pg_dsn: str) -> None:  # noqa: F811
    """Claim on A, ack on B; A's unacked deliveries time out and go to B."""
    url = fresh_url(pg_dsn)
    a = await open_store(url)
    b = await open_store(url)
    try:
        for i in range(10):
            await a.append(f"s{i}", [ev()])
        await a.subscriptions.put_group("g", GroupSettings(ack_timeout_seconds=5), 0)
        from_a = await a.subscriptions.claim("g", "on-a", 4, T0, RULES)
        from_b = await b.subscriptions.claim("g", "on-b", 100, T0, RULES)
        assert from_a is not None and from_b is not None
        got_a = [d.event.position for d in from_a]
        got_b = [d.event.position for d in from_b]
        assert not set(got_a) & set(got_b) and sorted(got_a + got_b) == list(range(1, 11))
        assert await b.subscriptions.ack("g", [from_a[0].delivery_id]) == []
        assert await a.subscriptions.ack("g", [d.delivery_id for d in from_b]) == []
        # node A "dies" holding three: they come back to B after the timeout
        again = await b.subscriptions.claim("g", "on-b", 100, T0 + 5, RULES)
        assert again is not None
        assert sorted(d.event.position for d in again) == sorted(got_a[1:])
        assert {d.attempt for d in again} == {2}
    finally:
        await a.close()
        await b.close()
