"""hive's 3c390c9e frontend (path routes) in headless Chromium against `hivelog serve`:
the flows that work today keep working. Each test also fails on any 5xx, any session
route answering the app with a 4xx, and any request that never completes (conftest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import seed
from tests.browser.conftest import dist, open_app
from tests.support.server import Server

BUILD = "3c390c9e"
SID = "session_20260601_100000_abcdef01"
COLONY_PAGE = "/colony/demo-colony"  # the app slugs the colony folder name


@pytest.fixture(autouse=True)
def _build_present() -> None:
    """Skip (or, under CI_REQUIRE_BROWSER=1, fail) before starting anything."""
    dist(BUILD)


def _colony_triggers(app: Any) -> None:
    """Open the colony page and its Triggers tab, once the session's SSE is up."""
    app.goto(COLONY_PAGE)
    app.wait_for_call("POST", "/api/sessions", 201)
    app.wait_for_call("GET", "/api/sessions/{sid}/events")
    app.page.get_by_text("Triggers", exact=True).first.click()
    expect(app.page.get_by_text("Daily at 9AM")).to_be_visible()
    expect(app.page.get_by_text("Inbox hook")).to_be_visible()


def test_home_lists_colony_and_queens(
    browser: Any, hivelog: Callable[[], Server], hive_home: Path, tmp_path: Path
) -> None:
    seed.write_colony(hive_home)
    with open_app(browser, BUILD, hivelog(), tmp_path) as app:
        app.goto("/")
        expect(app.page.get_by_text("Hey Test User, what can I help you with?")).to_be_visible()
        expect(app.page.get_by_text("Demo Colony")).to_be_visible()
        expect(app.page.get_by_text("Technology").first).to_be_visible()
        app.wait_for_call("GET", "/api/sessions")
        app.wait_for_call("GET", "/api/sessions/history")
        app.shot("home")


def test_queen_conversation_replays_history(
    browser: Any,
    hivelog: Callable[[], Server],
    hive_home: Path,
    hivelog_db: str,
    tmp_path: Path,
) -> None:
    lines = seed.conversation_lines(5, dt.datetime(2026, 6, 1, 10))
    seed.write_conversation(hive_home, SID, lines)
    seed.import_hive(hive_home, hivelog_db)
    with open_app(browser, BUILD, hivelog(), tmp_path) as app:
        app.goto(f"/queen/{seed.QUEEN}?session={SID}")
        for n in (1, 3, 5):
            expect(app.page.get_by_text(seed.user_text(n))).to_be_visible()
            expect(app.page.get_by_text(seed.queen_text(n))).to_be_visible()
        assert any(SID in c.url for c in app.log.calls if "/events/history" in c.url)
        app.wait_for_call("GET", "/api/sessions/{sid}/events/history")
        app.shot("queen-history")


def test_colony_trigger_run_stop_start(
    browser: Any, hivelog: Callable[[], Server], hive_home: Path, tmp_path: Path
) -> None:
    seed.write_colony(hive_home)
    with open_app(browser, BUILD, hivelog(), tmp_path) as app:
        _colony_triggers(app)
        page = app.page
        page.get_by_text("Daily at 9AM").click()
        page.get_by_role("button", name="Force Run").click()
        expect(page.get_by_text("SCHEDULER FIRED")).to_be_visible()
        expect(page.get_by_text("fired 1\u00d7")).to_be_visible()
        page.get_by_role("button", name="Stop trigger").click()
        expect(page.get_by_role("button", name="Start trigger")).to_be_visible()
        expect(page.get_by_text("inactive", exact=True)).to_be_visible()
        app.shot("stopped")
        page.get_by_role("button", name="Start trigger").click()
        expect(page.get_by_role("button", name="Stop trigger")).to_be_visible()
        expect(page.get_by_text("NEXT FIRE")).to_be_visible()
        app.shot("started")
        for action in ("run", "deactivate", "activate"):
            app.wait_for_call("POST", f"/api/sessions/{{sid}}/triggers/{{tid}}/{action}")


def test_webhook_hit_shows_card_live(
    browser: Any, hivelog: Callable[[], Server], hive_home: Path, tmp_path: Path
) -> None:
    seed.write_colony(hive_home)
    server = hivelog()
    with open_app(browser, BUILD, server, tmp_path) as app:
        _colony_triggers(app)
        expect(app.page.get_by_text("WEBHOOK FIRED")).to_have_count(0)
        # The hit comes from outside the app, straight to hivelog, as a webhook does.
        hit = httpx.post(f"{server.base_url}/api/webhooks/{seed.WEBHOOK_PATH}", json={"n": 1})
        assert hit.status_code == 202, hit.text
        expect(app.page.get_by_text("WEBHOOK FIRED")).to_be_visible()
        expect(app.page.get_by_text("Handle the new mail")).to_be_visible()
        app.shot("webhook-card")
