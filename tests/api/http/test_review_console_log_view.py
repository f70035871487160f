"""The console's log view while the store does not answer (review of the console,
metrics and health area).

The view read /metrics and /api/health together and drew nothing when either
failed; with the store stuck, health is a 503 (tests/api/http/
test_review_console_store_stuck.py), so the operator saw one error line and no
figures just when they matter. Now the figures /metrics still has are drawn, the
lag is "unknown" (NaN), and the error says the store is not answering.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from tests.api.http.test_console_browser import Tab, browser, open_tab  # noqa: F401
from tests.support.pg import fresh_url, pg_dsn  # noqa: F401
from tests.support.server import running_server

pytestmark = pytest.mark.slow


class TableLock:
    """The store's tables locked (ACCESS EXCLUSIVE) by another connection, held from a
    thread of its own until `release` (Playwright's sync API owns this thread's loop)."""

    def __init__(self, dsn: str, tables: list[str]) -> None:
        self.dsn, self.tables = dsn, tables
        self.held = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        side = await asyncpg.connect(self.dsn)
        try:
            async with side.transaction():
                await side.execute(f"LOCK TABLE {', '.join(self.tables)} IN ACCESS EXCLUSIVE MODE")
                self.held.set()
                await asyncio.to_thread(self.done.wait, 120)
        finally:
            await side.close()

    def __enter__(self) -> TableLock:
        self.thread.start()
        assert self.held.wait(60), "the lock was never taken"
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(60)


def test_the_log_view_shows_the_metrics_while_the_store_is_stuck(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
) -> None:
    url = fresh_url(pg_dsn)
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    tab: Tab = open_tab(browser, tmp_path)
    with running_server(url, tmp_path) as srv:
        try:
            page = tab.page
            page.goto(f"{srv.base_url}/console#/log")
            page.wait_for_function(
                "() => /^[0-9,]+$/.test(document.querySelector('[data-metric=head]').textContent)"
            )
            with TableLock(pg_dsn, [f"{schema}.events", f"{schema}.log_state"]):
                page.wait_for_function(
                    "() => document.querySelector('[data-note=lag]').textContent.includes('unknown')",
                    timeout=60_000,
                )
                alert = page.locator("main p.error[role=alert]")
                assert "503" in alert.inner_text() and "not answering" in alert.inner_text()
                assert page.locator("[data-metric=head]").inner_text() == "—"
                assert page.locator("[data-metric=sse]").inner_text() == "0"
            page.wait_for_function(
                "() => document.querySelector('[data-note=lag]').textContent === 'up to date'",
                timeout=60_000,
            )
            assert page.locator("main p.error[role=alert]").is_hidden()
        finally:
            tab.close()
    # the browser reports the 503s themselves; nothing else went wrong in the page
    assert [e for e in tab.errors if "status of 503" not in e] == []
