"""A real PostgreSQL for tests: `pg_dsn` (session fixture) and URL helpers.

Order of preference:
1. `$EVENTSTORE_TEST_PG_DSN` (set by .ci/postgres.sh, or any server you point it at);
2. a throwaway cluster: `initdb` from /usr/lib/postgresql/*/bin into a short temp dir,
   unix socket only, durability off, as user postgres when running as root;
3. neither: skip the PostgreSQL tests, or fail them when `REQUIRE_PG=1`.
Each pytest session gets its own database, dropped at the end; each store a test
opens gets its own schema in it (`fresh_url`), so tests never see each other's events.

Import the fixture into a test module: `from tests.support.pg import pg_dsn  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest


def pg_bindir() -> str | None:
    """The newest installed server's bin dir (not on PATH on a stock Debian)."""

    def major(path: str) -> int:
        name = path.split("/")[-2]
        return int(name) if name.isdigit() else 0

    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True):
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class Cluster:
    """A throwaway cluster on a private unix socket; stop() removes every trace."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="hlpg", dir="/tmp")  # socket path <= 107 bytes
        self.data = os.path.join(self.dir, "data")
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> Cluster:
        if self.as_root:  # postgres refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        opts = (
            f"-c listen_addresses='' -p 5432 -k {self.dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = os.path.join(self.dir, "server.log")
        self._run("pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "60", "-o", opts, "start")
        return self

    def dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.dir}&port=5432"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def with_param(dsn: str, key: str, value: str) -> str:
    parts = urlsplit(dsn)
    query = f"{parts.query}&{key}={value}" if parts.query else f"{key}={value}"
    return urlunsplit(parts._replace(query=query))


def fresh_url(dsn: str) -> str:
    """A store URL on a new, empty schema of the test database."""
    return with_param(dsn, "schema", "t_" + uuid.uuid4().hex[:16])


async def admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_PG") == "1":
        pytest.fail(f"PostgreSQL required (REQUIRE_PG=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, empty database on a real PostgreSQL server."""
    base = os.environ.get("EVENTSTORE_TEST_PG_DSN")
    if base:
        yield from _fresh_database(base)
        return
    bindir = pg_bindir()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries on this machine")
        raise AssertionError("unreachable")
    cluster = Cluster(bindir)
    # `timeout` and CI runners stop pytest with SIGTERM, which skips fixture teardown:
    # stop the cluster in the handler, then die of SIGTERM as before (never swallow it).
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: _die(cluster, signum))
    try:
        try:
            cluster.start()
        except (subprocess.SubprocessError, OSError, KeyError) as exc:
            _unavailable(f"could not start a throwaway cluster: {exc}")
        yield from _fresh_database(cluster.dsn())
    finally:
        signal.signal(signal.SIGTERM, previous)
        cluster.stop()


def _die(cluster: Cluster, signum: int) -> None:
    cluster.stop()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _fresh_database(base: str) -> Iterator[str]:
    database = "hivelog_test_" + uuid.uuid4().hex[:12]
    asyncio.run(admin(base, f'CREATE DATABASE "{database}"'))
    yield with_database(base, database)
    asyncio.run(admin(base, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
