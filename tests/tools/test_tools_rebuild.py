"""`replay --rebuild` and audit's projection checks against a checkpoint the real service saved."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from api.core.service import SessionService
from eventstore import open_store
from projections.catalogue import CHECKPOINT_NAME, SESSIONS_STREAM
from projections.envelope import new_event
from tests.support.tools_support import hivelog, sqlite_path

T0 = 1_790_000_000.0


async def seed_with_service(db_url: str) -> None:
    """Three sessions (one deleted and erased), folded and checkpointed by SessionService."""
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    for n in range(3):
        sid = f"session_{n}"
        await store.append(
            sid,
            [
                new_event(
                    "session_created",
                    {"session_id": sid, "queen_id": "queen_technology"},
                    timestamp=T0 + n,
                ),
                new_event(
                    "queen_identity_selected",
                    {"queen_id": "queen_growth", "name": "Ana", "title": "CGO"},
                    timestamp=T0 + n,
                ),
                new_event("client_input_received", {"content": f"hello {n}"}, timestamp=T0 + n + 1),
            ],
        )
    await store.append(
        SESSIONS_STREAM,
        [new_event("session_deleted", {"session_id": "session_2"}, timestamp=T0 + 9)],
    )
    await store.delete_stream("session_2")
    await store.append(
        SESSIONS_STREAM,
        [
            new_event(
                "session_erased", {"session_id": "session_2", "erased_events": 3}, timestamp=T0 + 9
            )
        ],
    )
    # Let the follower fold everything first: cancelling it just as a commit wakes it can
    # be swallowed by asyncio.wait_for on Python 3.11, and stop() then waits forever.
    await service.wait_for(await store.head_position())
    await service.stop()  # saves the checkpoint
    await store.close()


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    r = hivelog(*args, "--json")
    assert r.returncode in (0, 1), r.stderr.decode()
    return r.returncode, orjson.loads(r.stdout)


def tamper_checkpoint(db_url: str) -> None:
    conn = sqlite3.connect(sqlite_path(db_url))
    (raw,) = conn.execute(
        "SELECT state FROM checkpoints WHERE name = ?", (CHECKPOINT_NAME,)
    ).fetchone()
    state = orjson.loads(raw)
    state["sessions"][1]["message_count"] = 42
    conn.execute(
        "UPDATE checkpoints SET state = ? WHERE name = ?", (orjson.dumps(state), CHECKPOINT_NAME)
    )
    conn.commit()
    conn.close()


async def test_rebuild_equals_the_service_checkpoint(db_url: str) -> None:
    await seed_with_service(db_url)
    code, result = run_json("replay", "--rebuild", "--db", db_url)
    assert code == 0, result
    assert result["equal"] is True and result["differences"] == []
    assert result["sessions"] == 2 and result["deleted_sessions"] == 1
    assert result["checkpoint_position"] == result["head_position"] == 11
    code, report = run_json("audit", "--db", db_url)
    assert code == 0, report
    assert "projections" not in report["skipped"]
    assert report["stats"]["projection_sessions"] == 2
    human = hivelog("replay", "--rebuild", "--db", db_url)
    assert human.returncode == 0
    assert b"equals the rebuild (0 events behind the head)" in human.stdout


async def test_events_after_the_checkpoint_are_not_a_difference(db_url: str) -> None:
    await seed_with_service(db_url)
    store = await open_store(db_url)
    await store.append(
        "session_0", [new_event("client_input_received", {"content": "later"}, timestamp=T0 + 20)]
    )
    await store.close()
    code, result = run_json("replay", "--rebuild", "--db", db_url)
    assert code == 0 and result["equal"] is True
    assert result["head_position"] == result["checkpoint_position"] + 1
    assert run_json("audit", "--db", db_url)[0] == 0


async def test_a_damaged_checkpoint_is_named_and_can_be_rebuilt(db_url: str) -> None:
    await seed_with_service(db_url)
    tamper_checkpoint(db_url)
    code, report = run_json("audit", "--db", db_url)
    assert code == 1
    (fault,) = [f for f in report["faults"] if f["check"] == "projections"]
    assert (
        "session session_1: message_count is 42 in the checkpoint, 1 from scratch"
        in fault["message"]
    )
    code, result = run_json("replay", "--rebuild", "--db", db_url)
    assert code == 1 and result["equal"] is False
    assert any("message_count" in d for d in result["differences"])
    human = hivelog("replay", "--rebuild", "--db", db_url)
    assert human.returncode == 1 and b"DIFFERS" in human.stdout
    code, result = run_json("replay", "--rebuild", "--save", "--db", db_url)
    assert result["saved"] is True
    assert run_json("audit", "--db", db_url)[0] == 0
    assert run_json("replay", "--rebuild", "--db", db_url)[1]["equal"] is True


async def test_unreadable_checkpoint(db_url: str) -> None:
    await seed_with_service(db_url)
    conn = sqlite3.connect(sqlite_path(db_url))
    conn.execute("UPDATE checkpoints SET state = CAST('{\"format\": 99}' AS BLOB)")
    conn.commit()
    conn.close()
    code, report = run_json("audit", "--db", db_url)
    assert code == 1 and "unreadable" in report["faults"][0]["message"]
    code, result = run_json("replay", "--rebuild", "--db", db_url)
    assert code == 1 and result["equal"] is False


async def test_no_checkpoint_yet(db_url: str) -> None:
    store = await open_store(db_url)
    await store.append("s", [new_event("session_created", {"session_id": "s"}, timestamp=T0)])
    await store.close()
    code, result = run_json("replay", "--rebuild", "--db", db_url)
    assert code == 0 and result["equal"] is None and result["sessions"] == 1
    code, report = run_json("audit", "--db", db_url)
    assert code == 0 and "no checkpoint" in report["skipped"]["projections"]


def fire(trigger_id: str, scheduled_at: int | None, n: int) -> Any:
    data: dict[str, Any] = {
        "trigger_id": trigger_id,
        "trigger_type": "timer",
        "name": "t",
        "task": "x",
        "last_fired_at": 1000 * n,
    }
    if scheduled_at is not None:
        data["scheduled_at"] = scheduled_at
    return new_event("trigger_fired", data, timestamp=T0 + n)


async def test_a_timer_slot_fired_twice_is_named(db_url: str) -> None:
    store = await open_store(db_url)
    slot = 1_790_000_060_000
    await store.append("s1", [fire("daily", slot, 1), fire("daily", slot + 60_000, 2)])
    await store.append("s2", [fire("daily", slot, 3)])  # another session: not a duplicate
    await store.append("s1", [fire("daily", None, 4), fire("daily", None, 5)])  # manual runs
    await store.append("s1", [fire("daily", slot, 6)])
    await store.close()
    code, report = run_json("audit", "--db", db_url)
    assert code == 1
    (fault,) = [f for f in report["faults"] if f["check"] == "trigger_fires"]
    assert fault["stream_id"] == "s1" and fault["position"] == 6
    assert "'daily' fired twice for the slot scheduled at 2026-09-21T" in fault["message"]
    assert "(positions 1 and 6)" in fault["message"]
    assert report["stats"]["trigger_fires"] == 6
