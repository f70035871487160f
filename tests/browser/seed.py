"""What the browser tests need on disk and in the log: a colony folder with triggers, and
queen conversations imported the way a user brings them over (`hivelog import-hive`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

COLONY = "demo_colony"
QUEEN = "queen_technology"
WEBHOOK_PATH = "demo-hook"


def write_colony(home: Path, colony: str = COLONY, queen: str = QUEEN) -> Path:
    """`$HIVE_HOME/colonies/<colony>`: one worker, a daily timer and a webhook trigger."""
    folder = home / "colonies" / colony
    folder.mkdir(parents=True, exist_ok=True)
    worker = {
        "name": "worker",
        "description": "Keeps the demo inbox tidy",
        "goal": {"name": "Tidy inbox", "description": "Sort the demo inbox"},
        "tools": [],
    }
    (folder / "worker.json").write_text(json.dumps(worker))
    triggers = [
        {
            "id": "daily-digest",
            "name": "Daily digest",
            "trigger_type": "timer",
            "trigger_config": {"cron": "0 9 * * *"},
            "task": "Write the daily digest",
        },
        {
            "id": "inbox-hook",
            "name": "Inbox hook",
            "trigger_type": "webhook",
            "trigger_config": {"path": "/" + WEBHOOK_PATH, "methods": ["POST"]},
            "task": "Handle the new mail",
        },
    ]
    (folder / "triggers.json").write_text(json.dumps(triggers, indent=2))
    meta = {"name": colony, "colony_name": colony, "queen_name": queen, "created_at": 1780000000.0}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def _line(kind: str, data: dict[str, Any], at: dt.datetime, **extra: Any) -> str:
    return json.dumps(
        {
            "type": kind,
            "stream_id": "queen",
            "node_id": "queen",
            "execution_id": extra.get("execution_id", "exec-1"),
            "data": data,
            "timestamp": at.isoformat(),
            "correlation_id": None,
            "colony_id": None,
        }
    )


def user_text(n: int) -> str:
    return f"Question number {n}: how is the rollout going?"


def queen_text(n: int) -> str:
    return f"Answer number {n}: the rollout is on track."


def conversation_lines(exchanges: int, start: dt.datetime, filler: int = 0) -> list[str]:
    """`exchanges` user/queen message pairs; `filler` extra non-message events per pair
    (LLM turn records) to make a long log without a long screen."""
    at = start
    lines = [
        _line("queen_identity_selected", {"queen_id": QUEEN, "name": "Technology"}, at),
        _line("queen_phase_changed", {"phase": "independent"}, at),
    ]
    for n in range(1, exchanges + 1):
        at += dt.timedelta(seconds=30)
        lines.append(_line("client_input_received", {"content": user_text(n)}, at))
        at += dt.timedelta(seconds=1)
        lines.append(_line("execution_started", {}, at))
        for f in range(filler):
            data = {"stop_reason": "tool_use", "model": "m", "input_tokens": 1, "iteration": f}
            lines.append(_line("llm_turn_complete", data, at))
        text = queen_text(n)
        data = {"content": text, "snapshot": text, "inner_turn": 0, "iteration": n}
        lines.append(_line("client_output_delta", data, at))
        lines.append(_line("llm_turn_complete", {"stop_reason": "end_turn", "model": "m"}, at))
        lines.append(_line("execution_completed", {}, at))
    return lines


def write_conversation(
    home: Path, session_id: str, lines: list[str], *, layout: str = "3c390c9e"
) -> Path:
    """A queen DM session folder in hive's layout: 3c390c9e's `agents/queens/<q>/...` or
    54fd8db's `queens/<q>/...`."""
    assert layout in ("3c390c9e", "54fd8db"), layout
    base = home / "agents" / "queens" if layout == "3c390c9e" else home / "queens"
    folder = base / QUEEN / "sessions" / session_id
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = {"created_at": 1780000000.0, "queen_id": QUEEN, "agent_path": None}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def import_hive(home: Path, db_url: str) -> None:
    """`hivelog import-hive` into the database the server will open (before it starts)."""
    subprocess.run(
        [sys.executable, "-m", "tools", "import-hive", str(home), "--db", db_url],
        check=True,
        capture_output=True,
        env={**os.environ, "HIVE_HOME": str(home)},
        timeout=120,
    )


def long_conversation(total: int, exchanges: int, start: dt.datetime) -> list[str]:
    """Exactly `total` events holding `exchanges` user/queen pairs, the rest LLM turn
    records spread between them (a long log whose first message is far back)."""
    filler = (total - 2) // exchanges - 5
    lines = conversation_lines(exchanges, start, filler=max(filler, 0))
    at = start + dt.timedelta(days=1)
    while len(lines) < total:
        lines.append(_line("llm_turn_complete", {"stop_reason": "end_turn", "model": "m"}, at))
    assert len(lines) == total, len(lines)
    return lines


def busy_queen_events(now: float, tool: str) -> list[Any]:
    """What hive's runtime writes when the queen starts working and calls a tool."""
    from projections.envelope import new_event

    state = {"activity": "executing", "park_reason": None, "interrupt_cause": None}
    return [
        new_event("execution_started", {}, timestamp=now, node_id="queen", execution_id="x1"),
        new_event("loop_state_changed", {**state, "questions": None}, timestamp=now),
        new_event(
            "tool_call_started",
            {"tool_use_id": "tu-1", "tool_name": tool, "tool_input": {"q": "status"}},
            timestamp=now,
            node_id="queen",
            execution_id="x1",
        ),
    ]


def append_events(db_url: str, session_id: str, events: list[Any]) -> None:
    """Append to a running server's log from this process, as a second writer would
    (the server's subscribers poll the store, so it sees them within a poll)."""
    import asyncio

    from eventstore import open_store

    async def write() -> None:
        store = await open_store(db_url)
        try:
            await store.append(session_id, events)
        finally:
            await store.close()

    # In a thread of its own: playwright's sync API keeps an event loop on this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, write()).result(timeout=60)
