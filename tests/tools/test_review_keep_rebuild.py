"""`replay --rebuild --save` on an archived log saves only a fold that holds the
archived events exactly once: without the folders (or with one given twice) it used
to overwrite a correct checkpoint with a wrong catalogue, which the service then
served (sessions cold, creation times wrong) and the audit failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import open_store
from projections import catalogue as cat
from tests.support.tools_support import hivelog
from tests.tools.test_archive import audit, seed


@pytest.mark.parametrize("given", [0, 2])
async def test_rebuild_save_needs_every_archived_event_once(
    db_url: str, tmp_path: Path, given: int
) -> None:
    await seed(db_url)
    out = tmp_path / "arch"
    assert hivelog("archive", "--db", db_url, "--keep-last", "5", "-o", str(out)).returncode == 0
    store = await open_store(db_url)
    try:
        before = await store.load_checkpoint(cat.CHECKPOINT_NAME)
    finally:
        await store.close()

    folders = [a for _ in range(given) for a in ("--archive", str(out))]
    done = hivelog("replay", "--rebuild", "--save", "--db", db_url, *folders)
    if given == 0:
        assert done.returncode == 2 and b"not saved" in done.stderr, done.stderr.decode()
        store = await open_store(db_url)
        try:
            assert await store.load_checkpoint(cat.CHECKPOINT_NAME) == before
        finally:
            await store.close()
    else:  # the same folder twice: its events fold once, and the rebuild equals
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report = audit(db_url, out)
    assert report["ok"] and "projections" not in report["skipped"], report
