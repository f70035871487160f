"""Fixtures for the browser tests: the builds, Chromium, hivelog, the harness, a page.

Skips with a clear reason when the frontend builds or Chromium are absent (a user's
machine); with CI_REQUIRE_BROWSER=1 (set by .ci/run) their absence is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import Harness
from tests.browser.recorder import TABLES, RequestLog
from tests.support.server import Server, running_server

REPO = Path(__file__).resolve().parents[2]
UI_TIMEOUT_MS = 60_000
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-features=BackForwardCache",  # a cached page keeps its SSE sockets open
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The request tables of this session's browser runs, in the test log even when
    the tests pass (a closing record of what hive's frontend asked hivelog)."""
    if TABLES:
        terminalreporter.section("hive frontend /api/ request tables")
        for table in TABLES:
            terminalreporter.write_line(table + "\n")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CI_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def frontend_dir() -> Path:
    override = os.environ.get("HIVE_FRONTEND_DIR")
    return Path(override) if override else (REPO / ".." / "shared" / "hive-frontend").resolve()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        _unavailable(f"no Chromium at {path} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    return path


def dist(build: str) -> Path:
    folder = frontend_dir() / build / "dist"
    if not (folder / "index.html").is_file():
        _unavailable(
            f"hive frontend build {build} not found at {folder} "
            "(set HIVE_FRONTEND_DIR or place the builds at ../shared/hive-frontend)"
        )
    return folder


@pytest.fixture(scope="module")  # playwright runs a loop in this thread: never past a module
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # The machine is shared: wait for what a user would see for up to a minute (the
    # default 5 s fails under load), bounded all the same.
    expect.set_options(timeout=UI_TIMEOUT_MS)

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def hive_home(tmp_path: Path) -> Path:
    home = tmp_path / "hive"
    (home / "colonies").mkdir(parents=True)
    (home / "agents" / "queens").mkdir(parents=True)
    (home / "queens").mkdir(parents=True)
    return home


@pytest.fixture
def hivelog_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hivelog.db'}"


@pytest.fixture
def hivelog(tmp_path: Path, hive_home: Path, hivelog_db: str) -> Iterator[Callable[[], Server]]:
    """Call it once the test has seeded HIVE_HOME and the database: starts `hivelog
    serve` (a subprocess on 127.0.0.1) and stops it by its pid at the end."""
    env = {"HIVE_HOME": str(hive_home), "HIVELOG_AGENTS_ROOTS": ""}
    with ExitStack() as stack:

        def start() -> Server:
            return stack.enter_context(running_server(hivelog_db, tmp_path, env=env))

        yield start


@dataclass
class App:
    """One build served on one origin, with a page and the log of its /api/ calls."""

    page: Any
    log: RequestLog
    base_url: str
    shots: Path

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path, wait_until="domcontentloaded")

    def wait_for_call(
        self, method: str, path: str, status: int = 200, timeout_ms: int = UI_TIMEOUT_MS
    ) -> None:
        """Until the page has made this call and got `status` (bounded in time)."""
        waited = 0
        while self.log.count(method, path, status) == 0:
            if waited >= timeout_ms:
                raise AssertionError(f"no {method} {path} -> {status} in {timeout_ms} ms")
            self.page.wait_for_timeout(100)
            waited += 100

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def open_app(browser: Any, build: str, server: Server, tmp_path: Path) -> Iterator[App]:
    """Serve `build` against `server`, open a fresh browser context, and at the end
    print the request table, save a screenshot, and fail on any bad /api/ call."""
    harness = Harness(dist(build), server.base_url)
    harness.start()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    # The head build opens a guided tour over every page until it has been seen once.
    context.add_init_script("localStorage.setItem('hive:u:_:tutorial-seen-v1', 'true')")
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    log = RequestLog(harness.base_url)
    log.attach(page)
    shots = tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)
    app = App(page, log, harness.base_url, shots)
    ok = False
    try:
        yield app
        ok = True
    finally:
        try:
            app.shot("final")
        except Exception as exc:  # a crashed page must not hide the test's own error
            print(f"screenshot failed: {exc}")
        settle_ms = 0  # let answers in flight land before judging (bounded)
        while settle_ms < 5_000 and any(c.status is None and c.failure is None for c in log.calls):
            page.wait_for_timeout(100)
            settle_ms += 100
        report = f"/api/ requests of the {build} build ({len(log.calls)} calls):\n{log.table()}"
        (shots / "requests.txt").write_text(report + "\n")
        TABLES.append(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}\n{report}")
        print("\n" + report)
        print(f"screenshots: {shots}")
        problems = log.problems()
        context.close()
        harness.stop()
    if ok:
        assert not problems, "bad /api/ calls:\n" + "\n".join(problems)
