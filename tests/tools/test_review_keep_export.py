"""Bad destinations and unreachable databases give a clear exit 2, not a traceback
after the work (export wrote the whole log to `PATH.partial`, then failed to rename it)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.support.pg import pg_dsn  # noqa: F401
from tests.support.tools_support import hivelog
from tests.tools.test_archive import seed


async def test_export_refuses_an_output_it_cannot_write(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    folder = tmp_path / "out"
    folder.mkdir()
    to_folder = hivelog("export", "--db", db_url, "-o", str(folder))
    assert to_folder.returncode == 2 and b"is a folder" in to_folder.stderr
    assert b"Traceback" not in to_folder.stderr
    assert not (tmp_path / "out.partial").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    hive = hivelog("export", "--db", db_url, "--format", "hive", "-o", str(a_file))
    assert hive.returncode == 2 and b"not a folder" in hive.stderr
    assert a_file.read_text() == "x"
    nowhere = hivelog("export", "--db", db_url, "-o", str(tmp_path / "no" / "x.jsonl"))
    assert nowhere.returncode == 2 and b"no folder" in nowhere.stderr


def test_an_unknown_postgres_database_is_a_usage_error(
    tmp_path: Path,
    pg_dsn: str,  # noqa: F811
) -> None:
    parts = urlsplit(pg_dsn)
    missing = urlunsplit(parts._replace(path="/no_such_database_here"))
    for args in (
        ("backup", "--db", missing, str(tmp_path / "bk")),
        ("export", "--db", missing, "-o", str(tmp_path / "e.jsonl")),
        ("audit", "--db", missing),
    ):
        done = hivelog(*args)
        assert done.returncode == 2, (args, done.stderr.decode())
        assert b"cannot open the store" in done.stderr and b"Traceback" not in done.stderr
    assert not (tmp_path / "bk").exists()
