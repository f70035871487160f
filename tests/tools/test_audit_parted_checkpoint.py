"""A catalogue checkpoint large enough to be stored in parts (SQLite) is read whole by
the audit and compared with a fold from scratch; a missing part is a named fault."""

from __future__ import annotations

import sqlite3

from eventstore import open_store
from eventstore import sqlite_checkpoints as checkpoints
from projections import catalogue as cat
from tests.support.tools_support import hive_event, sqlite_path
from tests.tools.test_audit_chunks import seed
from tests.tools.test_tools_audit import audit_json, faults


async def test_a_parted_checkpoint_is_audited_whole(db_url: str) -> None:
    await seed(db_url, sessions=4, per=3)
    store = await open_store(db_url)
    for n in range(4):  # colony metadata is kept in the catalogue: ~100 KB per session
        metadata = {f"k{i}": "v" * 100 for i in range(1_000)}
        data = {"colony_id": f"c{n}", "agent_path": "/a", "metadata": metadata}
        await store.append(f"session_{n}", [hive_event("worker_colony_loaded", data)])
    state = cat.fold_all(await store.read_all(0, 100_000))
    checkpoint = cat.encode(state)
    assert len(checkpoint) > 1.5 * checkpoints.PART_BYTES
    await store.save_checkpoint(cat.CHECKPOINT_NAME, state.position, checkpoint)
    await store.close()
    conn = sqlite3.connect(sqlite_path(db_url))
    assert conn.execute("SELECT count(*) FROM checkpoint_parts").fetchone()[0] >= 2
    conn.close()

    code, report = audit_json(db_url)
    assert code == 0, report
    assert "projections" not in report.get("skipped", {}), report

    conn = sqlite3.connect(sqlite_path(db_url))
    with conn:
        conn.execute("DELETE FROM checkpoint_parts WHERE part = 1")
    conn.close()
    code, report = audit_json(db_url)
    assert code == 1
    assert "unreadable" in faults(report, "projections")[0]["message"]
