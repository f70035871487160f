"""`hivelog export --format hive`: sessions as hive's own folders, readable by hive.

Writes hive 54fd8db's layout by default: `HOME/queens/{queen_id}/sessions/{id}/` for
queen DMs and `HOME/colonies/{colony_id}/queens/{queen_id}/sessions/{id}/` for sessions
bound to a colony; `--layout 3c390c9e` writes the older
`HOME/agents/queens/{queen_id}/sessions/{id}/` for every session. Each folder gets
`events.jsonl` (one stored envelope per line, bytes untouched), `meta.json` (compact, as
hive writes it) and `summary.json` (hive's sidebar cache). Sessions come from the
catalogue projection (checkpoint plus a fold of the newer events). A session imported
from hive gets its original meta.json and queen folder back; others get a meta.json
built from their projected state. Existing events.jsonl files are not overwritten unless
`--force`. hive rebuilds an LLM context from its `conversations/` folder, which the log
does not hold, so an exported session shows its history but resumes without prior
conversation context.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from eventstore import EventStore
from projections import catalogue as cat
from projections.ids import is_session_stream, is_valid_id
from projections.session import SessionState

from .console import progress
from .import_hive import IMPORTS_STREAM
from .logio import UsageError, log_pages, stream_pages

LAYOUTS = ("54fd8db", "3c390c9e")


def session_folder(
    home: Path, layout: str, queen: str, sid: str, state: SessionState | None
) -> Path:
    """Where hive keeps this session in `layout` (ids already validated)."""
    if layout == "3c390c9e":
        return home / "agents" / "queens" / queen / "sessions" / sid
    colony = state.colony.colony_id if state is not None and state.colony else None
    if colony is not None and is_valid_id(colony):
        return home / "colonies" / colony / "queens" / queen / "sessions" / sid
    return home / "queens" / queen / "sessions" / sid


async def export_hive(
    store: EventStore,
    home: Path,
    session: str | None,
    *,
    force: bool = False,
    layout: str = "54fd8db",
) -> dict[str, object]:
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    head = await store.head_position()
    catalogue = await current_catalogue(store)
    imported = await imported_sessions(store)
    if session is not None and not is_session_stream(session):
        raise UsageError(f"{session!r} is a system stream, not a session")
    ids = [session] if session is not None else list(catalogue.sessions)
    plan: list[tuple[str, Path, SessionState | None]] = []
    skipped = [sid for sid in ids if not is_valid_id(sid)]  # never a path from a stream id
    for sid in ids:
        if sid in skipped:
            continue
        record = imported.get(sid, {})
        state = catalogue.sessions.get(sid)
        queen = record.get("queen_id") or (state.queen_id if state else "")
        if not isinstance(queen, str) or not is_valid_id(queen):
            queen = "default"  # hive's own fallback folder; never a path from event data
        folder = session_folder(home, layout, str(queen), sid, state)
        if (folder / "events.jsonl").exists() and not force:
            raise UsageError(f"{folder / 'events.jsonl'} exists (use --force to overwrite)")
        plan.append((sid, folder, state))
    events = 0
    with progress("export", len(plan)) as advance:
        for sid, folder, state in plan:
            folder.mkdir(parents=True, exist_ok=True)
            events += await _write_events(store, sid, head, folder / "events.jsonl")
            meta = imported.get(sid, {}).get("meta")
            if not isinstance(meta, dict):
                meta = meta_from_state(state) if state else {}
            _write_atomic(folder / "meta.json", orjson.dumps(meta))
            if state is not None:
                _write_atomic(folder / "summary.json", orjson.dumps(summary_from_state(state)))
            advance(1)
    return {
        "format": "hive",
        "layout": layout,
        "sessions": len(plan),
        "events": events,
        "head_position": head,
        "output": str(home),
        "skipped_invalid_ids": skipped,
    }


async def current_catalogue(store: EventStore) -> cat.CatalogueState:
    """The checkpointed catalogue plus the newer events (a full fold if there is none)."""
    checkpoint = await store.load_checkpoint(cat.CHECKPOINT_NAME)
    state = cat.decode_state(checkpoint.state) if checkpoint else None
    if state is None or checkpoint is None or state.position != checkpoint.position:
        state = cat.CatalogueState()
    async for page in log_pages(store, after_position=state.position):
        for event in page:
            cat.apply(state, event)
    return state


async def imported_sessions(store: EventStore) -> dict[str, dict[str, Any]]:
    """session id -> the newest `hive_session_imported` record."""
    found: dict[str, dict[str, Any]] = {}
    if await store.stream_info(IMPORTS_STREAM) is None:
        return found
    async for page in stream_pages(store, IMPORTS_STREAM, types=["hive_session_imported"]):
        for event in page:
            body = event.data
            record = body.get("data") if isinstance(body, dict) else None
            if isinstance(record, dict) and isinstance(record.get("session_id"), str):
                found[record["session_id"]] = record
    return found


def meta_from_state(state: SessionState) -> dict[str, Any]:
    """hive's meta.json keys (contract §5.1) from a projected session."""
    colony = state.colony
    meta: dict[str, Any] = {"created_at": state.created_at, "queen_id": state.queen_id}
    if colony is not None:
        meta.update(
            agent_name=colony.colony_name,
            agent_path=colony.agent_path,
            worker_name=colony.worker_name or None,
        )
    meta["phase"] = state.queen_phase
    if state.colony_spawned:
        meta.update(colony_spawned=True, spawned_colony_name=state.spawned_colony_name)
    return meta


def summary_from_state(state: SessionState) -> dict[str, Any]:
    return {
        "message_count": state.message_count,
        "last_message": state.last_message,
        "last_active_at": state.last_active_at,
    }


async def _write_events(store: EventStore, sid: str, head: int, path: Path) -> int:
    count = 0
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        async for page in stream_pages(store, sid, before_position=head + 1):
            out.write(b"".join(_one_line(e.data_json) for e in page))
            count += len(page)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    return count


def _one_line(data_json: bytes) -> bytes:
    """A stored payload as one JSONL line (payloads stored pretty-printed are compacted)."""
    if b"\n" in data_json or b"\r" in data_json:
        data_json = orjson.dumps(orjson.loads(data_json))
    return data_json + b"\n"


def _write_atomic(path: Path, content: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(content)
    partial.replace(path)
