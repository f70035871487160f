"""The operator console in a real headless browser (Debian's chromium, driven by
Playwright over the DevTools protocol) against a real `hivelog serve`.

Each test fails on any console error or uncaught page error. Screenshots go to the
test's tmp_path; with HIVELOG_CONSOLE_SCREENSHOTS=DIR they are also copied there
(`docs/console` holds the README's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventstore import open_store
from projections.envelope import new_event
from tests.support.server import Server, running_server
from tests.support.sessions_support import TIMER, Env, make_colony, make_env
from tests.support.triggers_support import session_events, timer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "console-token"
SEEDED_EVENTS = 3000
CAP = 600  # api/http/console/session.js: rows kept in the DOM

if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the playwright package is not installed (pip install -e '.[test]')",
)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    """A page plus every console error and uncaught exception it produced."""

    page: Any
    shots: Path
    errors: list[str] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        """Close the page while its server still runs (a stopped server is an error)."""
        if not self.closed:
            self.closed = True
            self.page.context.close()

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        copy_to = os.environ.get("HIVELOG_CONSOLE_SCREENSHOTS")
        if copy_to:
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / path.name)
        return path


@pytest.fixture(params=[1280, 390], ids=["1280px", "390px"])
def width(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


def open_tab(browser: Any, tmp_path: Path, width: int = 1280) -> Tab:
    height = 800 if width > 500 else 844
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Tab(page, tmp_path)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
    return tab


@pytest.fixture
def tab(browser: Any, tmp_path: Path) -> Iterator[Tab]:
    t = open_tab(browser, tmp_path)
    yield t
    t.close()
    assert t.errors == [], t.errors


@contextmanager
def serving(tab: Tab, server: AbstractContextManager[Server]) -> Iterator[Server]:
    """The server, with the tab closed before the server stops."""
    with server as srv:
        try:
            yield srv
        finally:
            tab.close()


def server_with_colony(
    tmp_path: Path, extra: list[str] | None = None
) -> tuple[Env, AbstractContextManager[Server]]:
    env = make_env(tmp_path)
    make_colony(env.root, "demo", triggers=[TIMER])
    cm = running_server(env.db_url, tmp_path, [*env.args(), *(extra or [])], env.env())
    return env, cm


def create_session(srv: Server, env: Env, headers: dict[str, str] | None = None) -> str:
    r = httpx.post(
        f"{srv.base_url}/api/sessions",
        json={"agent_path": str(env.root / "demo")},
        headers=headers or {},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def run_trigger(srv: Server, sid: str, headers: dict[str, str] | None = None) -> None:
    r = httpx.post(
        f"{srv.base_url}/api/sessions/{sid}/triggers/daily/run", headers=headers or {}, timeout=30
    )
    assert r.status_code == 200, r.text


def trigger_fires(srv: Server, sid: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{srv.base_url}/api/sessions/{sid}/events/history?types=trigger_fired", timeout=30
    )
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def test_lists_a_session_and_shows_a_new_event_live(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path)
    with serving(tab, cm) as srv:
        sid = create_session(srv, env)
        page = tab.page
        page.goto(f"{srv.base_url}/console")
        row = page.locator(f'a.srow[data-id="{sid}"]')
        row.wait_for()
        assert "live" in row.inner_text()
        row.click()
        page.locator("#timeline .ev").first.wait_for()
        page.locator("text=● live").wait_for()
        assert page.locator("#timeline .ev[data-type=trigger_fired]").count() == 0
        run_trigger(srv, sid)
        # the bar: an event appended through the API shows within 2 s
        page.locator("#timeline .ev[data-type=trigger_fired]").first.wait_for(timeout=2000)
        newest = page.locator("#timeline .ev").first
        assert newest.get_attribute("data-type") == "trigger_fired"
        newest.locator("button").click()
        assert '"trigger_fired"' in newest.locator("pre").inner_text()
        # keyboard: arrows move between events, Enter opens one
        newest.locator("button").focus()
        page.keyboard.press("ArrowDown")
        focused = "document.activeElement.closest('.ev').dataset.version"
        assert page.evaluate(focused) == str(int(newest.get_attribute("data-version") or 0) - 1)
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "true"
        page.keyboard.press("End")
        assert page.evaluate(focused) == "1"


def test_keyboard_search_arrows_and_enter(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path)
    with serving(tab, cm) as srv:
        sids = [create_session(srv, env) for _ in range(3)]
        page = tab.page
        page.goto(f"{srv.base_url}/console#/sessions")
        page.locator("a.srow").nth(2).wait_for()
        search = page.get_by_label("Search sessions")
        search.focus()
        page.keyboard.press("ArrowDown")
        first = page.evaluate("document.activeElement.dataset.id")
        page.keyboard.press("ArrowDown")
        second = page.evaluate("document.activeElement.dataset.id")
        assert {first, second} <= set(sids) and first != second
        # one tab stop for the whole list
        assert page.locator("a.srow[tabindex='0']").count() == 1
        page.keyboard.press("Enter")
        page.wait_for_url(f"**#/session/{second}")
        page.locator("#timeline .ev").first.wait_for()
        search_term = sids[0][-8:]
        page.goto(f"{srv.base_url}/console#/sessions")
        page.get_by_label("Search sessions").fill(search_term)
        page.wait_for_function("document.querySelectorAll('a.srow').length === 1")


async def seed_long_session(db_url: str, sid: str, n: int) -> None:
    store = await open_store(db_url)
    try:
        now = time.time()
        await store.append(sid, session_events(sid, [timer("t", cron="0 9 * * *")], now))
        batch = [
            new_event("llm_text_delta", {"content": f"chunk {i}"}, timestamp=now) for i in range(n)
        ]
        await store.append(sid, batch)
    finally:
        await store.close()


def test_pages_back_to_the_first_event_with_a_capped_dom(tab: Tab, tmp_path: Path) -> None:
    env = make_env(tmp_path)
    sid = "session_long"
    # Playwright's sync API runs a loop in this thread: seed from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed_long_session(env.db_url, sid, SEEDED_EVENTS)).result()
    with serving(tab, running_server(env.db_url, tmp_path, env.args(), env.env())) as srv:
        page = tab.page
        page.goto(f"{srv.base_url}/console#/session/{sid}")
        page.locator("#timeline .ev").first.wait_for()
        total = page.locator("[data-role=total]").inner_text().replace(",", "")
        assert int(total) > SEEDED_EVENTS
        older = page.locator("button[data-role=older]")
        pages = 0
        while older.is_visible():
            older.click()
            pages += 1
            page.wait_for_function("b => !b.disabled", arg=older.element_handle(), timeout=15_000)
            assert page.locator("#timeline > li").count() <= CAP
            assert pages < 100
        page.locator("[data-role=start]").wait_for()
        assert page.locator("#timeline .ev[data-version='1']").count() == 1
        assert page.locator("#timeline .ev").last.get_attribute("data-type") == "session_created"
        assert page.locator("#timeline > li").count() == CAP
        tab.shot("timeline-first-event", full_page=False)
        # and forward again to the newest page
        page.locator("button[data-role=newer]").click()
        page.get_by_role("button", name="Newest").click()
        page.wait_for_function(
            "n => document.querySelector('#timeline .ev')?.dataset.version === String(n)",
            arg=int(total),
        )


def test_run_button_records_a_trigger_fired(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path)
    with serving(tab, cm) as srv:
        sid = create_session(srv, env)
        page = tab.page
        page.goto(f"{srv.base_url}/console#/session/{sid}/triggers")
        card = page.locator('[data-trigger="daily"]')
        card.wait_for()
        assert "every day at 09:00" in card.inner_text()
        assert trigger_fires(srv, sid) == []
        card.locator("[data-action=run]").click()
        page.locator("text=Daily digest: fired").wait_for()
        fires = trigger_fires(srv, sid)
        assert len(fires) == 1 and fires[0]["data"]["forced"] is True
        page.wait_for_function(
            "() => document.querySelector('[data-trigger=daily] [data-role=fire-count]')"
            "?.textContent === '1'"
        )
        assert card.locator("svg path").count() >= 1  # the manual fire's diamond
        card.locator("[data-action=deactivate]").click()
        page.locator("text=Daily digest: deactivated").wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-trigger=daily] [data-action=activate]')"
            "?.disabled === false"
        )
        card.locator("[data-action=activate]").click()
        page.locator("text=Daily digest: activated").wait_for()


def test_with_a_token_the_page_asks_once_and_works(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path, ["--token", TOKEN])
    headers = {"X-Hive-Token": TOKEN}
    with serving(tab, cm) as srv:
        sid = create_session(srv, env, headers)
        page = tab.page
        # the 401s before the token is given are expected; the browser logs them
        page.goto(f"{srv.base_url}/console")
        dialog = page.locator("#token-dialog")
        dialog.wait_for(state="visible")
        page.get_by_role("textbox", name="Token").fill(TOKEN)
        page.get_by_role("button", name="Use token").click()
        page.locator(f'a.srow[data-id="{sid}"]').click()
        page.locator("#timeline .ev").first.wait_for()
        page.locator("text=● live").wait_for()
        run_trigger(srv, sid, headers)
        page.locator("#timeline .ev[data-type=trigger_fired]").first.wait_for(timeout=2000)
        assert not dialog.is_visible()
        assert page.evaluate("sessionStorage.getItem('hivelog.token')") == TOKEN
        tab.errors[:] = [e for e in tab.errors if "401" not in e]


def test_the_log_view_and_its_audit(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path, ["--node-id", "node-a"])
    with serving(tab, cm) as srv:
        sid = create_session(srv, env)
        run_trigger(srv, sid)
        made = httpx.put(
            f"{srv.base_url}/api/subscriptions/fires", json={"types": ["trigger_fired"]}
        )
        assert made.status_code == 201, made.text
        page = tab.page
        page.goto(f"{srv.base_url}/console#/log")
        page.locator("#nodes td", has_text="node-a").wait_for()
        page.wait_for_function(
            "() => /^[0-9,]+$/.test(document.querySelector('[data-metric=head]').textContent)"
        )
        group = page.locator("#subscriptions tr", has_text="fires")
        group.wait_for()
        assert "trigger_fired" in group.inner_text()
        page.locator("#audit").click()
        verdict = page.locator("[data-role=verdict]")
        verdict.wait_for(timeout=60_000)
        assert "sound" in verdict.inner_text()
        assert page.locator("[data-check=trigger_fires]").inner_text().endswith("ok")


def ticking_session(srv: Server, env: Env) -> str:
    """A session whose 1.2 s timer has fired on schedule, by hand, and missed slots
    while the session was stopped: the triggers chart then shows each kind of mark.
    (The screenshot only; nothing here asserts on timing.)"""
    ticker = {
        "id": "ticker",
        "name": "Ticker",
        "trigger_type": "timer",
        "trigger_config": {"interval_minutes": 0.02, "misfire": "skip"},
        "task": "tick",
    }
    make_colony(env.root, "ticker", triggers=[ticker])
    base = srv.base_url
    body = {"agent_path": str(env.root / "ticker")}
    sid: str = httpx.post(f"{base}/api/sessions", json=body, timeout=30).json()["session_id"]
    time.sleep(3)
    httpx.post(f"{base}/api/sessions/{sid}/triggers/ticker/run", timeout=30)
    httpx.delete(f"{base}/api/sessions/{sid}", timeout=30)
    time.sleep(3)
    httpx.post(f"{base}/api/sessions", json={"queen_resume_from": sid}, timeout=30)
    time.sleep(3)
    return sid


def test_screenshots_of_each_view(browser: Any, tmp_path: Path, width: int) -> None:
    """Every view at 1280 and 390 px, with no horizontal overflow and no errors."""
    env, cm = server_with_colony(tmp_path)
    tab = open_tab(browser, tmp_path, width)
    try:
        with serving(tab, cm) as srv:
            for _ in range(2):
                create_session(srv, env)
            sid = create_session(srv, env)
            for _ in range(3):
                run_trigger(srv, sid)
            httpx.delete(f"{srv.base_url}/api/sessions/{create_session(srv, env)}", timeout=30)
            ticking = ticking_session(srv, env)
            page = tab.page
            views = {
                "sessions": ("#/sessions", "a.srow"),
                "session": (f"#/session/{sid}", "#timeline .ev"),
                "triggers": (f"#/session/{ticking}/triggers", "[data-trigger] svg"),
                "log": ("#/log", "#nodes table"),
            }
            for name, (route, ready) in views.items():
                page.goto(f"{srv.base_url}/console{route}")
                page.locator(ready).first.wait_for()
                if name == "session":
                    page.locator("#timeline .ev[data-type=trigger_fired] button").first.click()
                if name == "log":
                    page.locator("#audit").click()
                    page.locator("[data-role=verdict]").wait_for(timeout=60_000)
                    page.wait_for_timeout(2500)  # two metric samples, so rates show
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{name} overflows horizontally by {overflow}px at {width}"
                assert tab.shot(f"{name}-{width}").stat().st_size > 0
    finally:
        tab.close()
    assert tab.errors == [], tab.errors


def test_streaming_events_do_not_move_what_the_reader_looks_at(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path)
    with serving(tab, cm) as srv:
        sid = create_session(srv, env)
        for _ in range(40):
            run_trigger(srv, sid)
        page = tab.page
        page.goto(f"{srv.base_url}/console#/session/{sid}")
        page.locator("text=● live").wait_for()
        watched = page.locator("#timeline .ev").nth(25)
        watched.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, 200)")
        version = watched.get_attribute("data-version")
        before = watched.bounding_box()
        total = int(page.locator("[data-role=total]").inner_text())
        for _ in range(10):
            run_trigger(srv, sid)
        page.wait_for_function(
            "n => document.querySelector('[data-role=total]').textContent === String(n)",
            arg=total + 10,
        )
        assert page.locator("#timeline .ev").first.get_attribute("data-version") == str(total + 10)
        row = page.locator(f"#timeline .ev[data-version='{version}']")
        after = row.bounding_box()
        assert before is not None and after is not None
        assert abs(after["y"] - before["y"]) <= 1, (before, after)


PURE_CHECKS = """
async () => {
  const f = await import('/console/format.js');
  const api = await import('/console/api.js');
  const m = await import('/console/metrics.js');
  const got = {};
  got.cron = ['0 9 * * *', '*/15 * * * *', '30 8 * * 1-5', '0 9,17 * * *', '5 * * * *',
    '0 3 1 * *', '0 0 L * *'].map(f.cronWords);
  got.interval = [0.5, 1, 5, 60, 120].map(
    (n) => f.scheduleWords({trigger_type: 'timer', trigger_config: {interval_minutes: n}}));
  got.zone = f.fmtTime(Date.UTC(2026, 0, 1, 12, 0, 0), 'Europe/Berlin');
  const messages = [];
  const p = new api.SseParser((msg) => messages.push(msg));
  for (const chunk of [': keepalive\\n\\nid: 7\\r\\nda', 'ta: {"a":', '1}\\r\\n\\r\\nid: 8\\n',
    'data: x\\ndata: y\\n\\n']) p.push(chunk);
  got.sse = messages;
  const text = '# HELP x\\nhivelog_appends_total 10\\nhivelog_group_commit_batch_size_sum 10\\n'
    + 'hivelog_group_commit_batch_size_count 4\\nhivelog_group_commit_batch_size_bucket{le="1.0"} 2\\n';
  const s1 = m.sample(m.parseMetrics(text), 0);
  const s2 = {...s1, at: 2000, appends: 30, batchSum: 30, batchCount: 8};
  const s3 = {...s1, at: 4000, appends: 3, batchSum: 3, batchCount: 1};  // restarted
  got.intervals = m.intervals([s1, s2, s3]).map((x) => [x.rate, x.batch]);
  got.bucket = m.parseMetrics(text).hivelog_group_commit_batch_size_bucket[0].labels.le;
  return got;
}
"""


def test_pure_helpers_in_the_browser(tab: Tab, tmp_path: Path) -> None:
    """Schedules in words, the SSE parser on split chunks, metric rates across a restart."""
    env = make_env(tmp_path)
    with serving(tab, running_server(env.db_url, tmp_path, env.args(), env.env())) as srv:
        tab.page.goto(f"{srv.base_url}/console")
        got = tab.page.evaluate(PURE_CHECKS)
    assert got["cron"] == [
        "every day at 09:00",
        "every 15 minutes",
        "on weekdays at 08:30",
        "every day at 09:00 and 17:00",
        "every hour at minute 5",
        "on day 1 of every month at 03:00",
        "cron 0 0 L * *",
    ]
    assert got["interval"] == [
        "every 30 seconds",
        "every minute",
        "every 5 minutes",
        "every hour",
        "every 2 hours",
    ]
    assert got["zone"] == "2026-01-01 13:00:00"
    assert got["sse"] == [{"id": "7", "data": '{"a":1}'}, {"id": "8", "data": "x\ny"}]
    assert got["intervals"] == [[10, 5]]  # the restart's negative step is dropped
    assert got["bucket"] == "1.0"


def test_filter_by_type_pages_and_follows_only_that_type(tab: Tab, tmp_path: Path) -> None:
    env, cm = server_with_colony(tmp_path)
    with serving(tab, cm) as srv:
        sid = create_session(srv, env)
        run_trigger(srv, sid)
        page = tab.page
        page.goto(f"{srv.base_url}/console#/session/{sid}")
        page.locator("#timeline .ev").nth(3).wait_for()
        page.get_by_label("Filter by event types").fill("trigger_fired")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('#timeline .ev').length === 1")
        assert page.get_by_label("Event types preset").input_value() == "custom"
        run_trigger(srv, sid)
        page.wait_for_function("document.querySelectorAll('#timeline .ev').length === 2")
        types = page.eval_on_selector_all("#timeline .ev", "els => els.map(e => e.dataset.type)")
        assert types == ["trigger_fired", "trigger_fired"]
        page.get_by_label("Event types preset").select_option("lifecycle")
        page.wait_for_function(
            "[...document.querySelectorAll('#timeline .ev')].every(e => e.classList.contains('life'))"
            " && document.querySelectorAll('#timeline .ev').length > 0"
        )
