"""Agent folders over HTTP: GET /api/discover, DELETE /api/agents, PATCH /api/agents/metadata.

The folder is the source of a colony's facts, so edits to it are also recorded
in the log (`$agents` stream, and each session with that colony loaded).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from pathlib import Path
from typing import Any

from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.colonies import (
    CATEGORY,
    discover,
    remove_folder,
    validate_agent_path,
    write_metadata,
)
from api.core.service import SessionService
from api.core.settings import hive_home
from api.http import shapes
from api.http.body import RequestError
from api.http.contract import Body, documented, read_model
from api.http.responses import JSONResponse
from api.http.routing import sessions_of
from api.http.state import parts
from eventstore import NewEvent
from projections import commands
from projections.envelope import iso_utc, new_event, parse_iso
from projections.errors import Forbidden, NotFound
from projections.ids import AGENTS_STREAM
from projections.session import SessionState


class AgentPath(Body):
    """DELETE /api/agents. `agent_path` is required (hive's text: `agent_path is
    required`, also for "" and null)."""

    agent_path: str | None = None


class AgentMetadata(AgentPath, kw_only=True):
    """PATCH /api/agents/metadata: `icon` null clears it; absent leaves it."""

    icon: str | UnsetType | None = UNSET


def _agent_path(request: Request, body: AgentPath) -> Path:
    if not body.agent_path:
        raise RequestError(400, "agent_path is required")
    return validate_agent_path(body.agent_path, parts(request).settings.agents_roots)


def _sessions_using(service: SessionService, folder: Path) -> list[str]:
    path = str(folder)
    return [
        sid
        for sid, s in service.catalogue.sessions.items()
        if s.colony is not None and s.colony.agent_path == path
    ]


@documented("Agent folders by category", response=shapes.Discovered)
async def discover_agents(request: Request) -> Response:
    """GET /api/discover: `{"Your Agents": [DiscoverEntry + is_loaded]}`.

    session_count and last_active come from the log (hive counted folders on disk).
    """
    service = sessions_of(request)
    entries = await asyncio.to_thread(discover, parts(request).settings.agents_roots)
    for entry in entries:
        using = [service.catalogue.sessions[sid] for sid in _sessions_using(service, entry["path"])]
        entry["session_count"] = len(using)
        entry["is_loaded"] = any(s.live for s in using)
        latest = max((s.last_active_at for s in using), default=None)
        known = parse_iso(entry["last_active"])
        if latest is not None and (known is None or latest > known):
            entry["last_active"] = iso_utc(latest)
    return JSONResponse({CATEGORY: entries} if entries else {})


def _stop(state: SessionState | None, session_id: str, now: float) -> list[NewEvent]:
    return commands.decide_stop(state, session_id, now)


@documented(
    "Delete an agent folder (stops the sessions using it)",
    body=AgentPath,
    response=shapes.Deleted,
    errors=(400, 403, 413, 415),
)
async def delete_agent(request: Request) -> Response:
    """DELETE /api/agents `{agent_path}`: stop its sessions, remove the folder."""
    service = sessions_of(request)
    body = await read_model(request, AgentPath)
    folder = _agent_path(request, body)
    if folder.is_relative_to((hive_home() / "agents").resolve()):
        raise Forbidden("Cannot delete framework agents")
    now = time.time()
    stopped = []
    for sid in _sessions_using(service, folder):
        state = service.get(sid)
        if state is not None and state.live:
            await service.execute(sid, functools.partial(_stop, session_id=sid, now=now))
            stopped.append(sid)
    try:
        existed = await asyncio.to_thread(remove_folder, folder)
    except OSError as exc:
        return JSONResponse({"error": f"Failed to delete agent directory: {exc}"}, status_code=500)
    if existed or stopped:
        payload = {"agent_path": str(folder), "stopped_sessions": stopped}
        event = new_event("agent_deleted", payload, timestamp=now, stream_id=AGENTS_STREAM)
        await service.store.append(AGENTS_STREAM, [event])
    return JSONResponse({"deleted": str(folder)})


@documented(
    "Merge an icon into the agent's metadata.json",
    body=AgentMetadata,
    response=shapes.Ok,
    errors=(400, 404, 413, 415),
)
async def update_metadata(request: Request) -> Response:
    """PATCH /api/agents/metadata `{agent_path, icon?}`: merge into metadata.json."""
    service = sessions_of(request)
    body = await read_model(request, AgentMetadata)
    folder = _agent_path(request, body)
    changes: dict[str, Any] = {}
    if body.icon is not UNSET:
        changes["icon"] = body.icon
    if not folder.is_dir():
        raise NotFound(f"Agent not found: {body.agent_path}")
    if not changes:
        return JSONResponse({"ok": True})
    changes["updated_at"] = dt.datetime.now(dt.UTC).isoformat()
    await asyncio.to_thread(write_metadata, folder, changes)
    now = time.time()
    record = {"agent_path": str(folder), "metadata": changes}
    event = new_event("colony_metadata_updated", record, timestamp=now, stream_id=AGENTS_STREAM)
    await service.store.append(AGENTS_STREAM, [event])
    for sid in _sessions_using(service, folder):
        await service.execute(sid, lambda s: commands.decide_metadata(s, str(folder), changes, now))
    return JSONResponse({"ok": True})


routes = [
    Route("/api/discover", discover_agents, methods=["GET"]),
    Route("/api/agents", delete_agent, methods=["DELETE"]),
    Route("/api/agents/metadata", update_metadata, methods=["PATCH"]),
]
