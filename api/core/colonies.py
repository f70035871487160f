"""Agent folders on disk: path validation, reading a colony's facts, discovery.

This is the only place that reads agent folders, and every file it opens goes
through `api.core.agent_files` (no symlinks, no special files, size and nesting
limited). What it reads is recorded in events (`worker_colony_loaded`), so
replaying the log never needs the folder; the limits keep that event under the
store's 1 MiB per event (3 files x 256 KiB) and a load's events under its
10,000 per append (MAX_TRIGGERS).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import orjson

from api.core.agent_files import (
    MAX_AGENT_FILE_BYTES,
    MAX_TRIGGERS_FILE_BYTES,
    AgentFileError,
    inside,
    json_file_bytes,
    lock_folder,
    open_folder,
    parse_agent_json,
    path_too_long,
    read_agent_json,
    read_at,
    shown,
    write_at,
)
from eventstore import MAX_EVENT_BYTES
from projections.commands import ColonyFacts, colony_events
from projections.errors import Invalid
from projections.ids import is_valid_id
from projections.trigger_config import ConfigError, validate_config

log = logging.getLogger("hivelog.colonies")

RESERVED_STEMS = frozenset({"agent", "flowchart", "triggers", "configuration", "metadata"})
TRIGGER_TYPES = frozenset({"timer", "webhook"})
CATEGORY = "Your Agents"
MAX_TRIGGERS: Final = 1000  # entries in triggers.json: 2 events each, one append of <= 10,000
LOADED_EVENT_BUDGET: Final = MAX_EVENT_BYTES - 16 * 1024  # room for the envelope's ids
MAX_WORKER_FILES: Final = 100  # worker json files one folder may hold (discover reads all)


class AgentPathError(Invalid):
    """An agent_path that is not strictly inside an allowed root."""


def validate_agent_path(raw: object, roots: Iterable[Path]) -> Path:
    """hive's `validate_agent_path`: expand, resolve (following symlinks), then require
    the result to be strictly inside one of the roots; a root itself is refused."""
    if not isinstance(raw, str) or not raw.strip():
        raise AgentPathError("agent_path must be a non-empty string")
    if "\x00" in raw:
        raise AgentPathError("agent_path contains a NUL character")
    try:
        resolved = Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise AgentPathError(f"agent_path cannot be resolved: {exc}") from None
    if (why := path_too_long(resolved)) is not None:
        raise AgentPathError(f"agent_path {why}")  # the OS would say ENAMETOOLONG
    if not is_utf8(resolved):
        raise AgentPathError(f"agent_path {shown(resolved)} is not valid UTF-8")
    roots = list(roots)
    if inside(resolved, roots):
        return resolved
    raise AgentPathError(
        "agent_path must be inside an allowed agents directory "
        f"({', '.join(str(r) for r in roots)})"
    )


def is_utf8(path: Path) -> bool:
    """The path's bytes are UTF-8. Else Python holds it with surrogates, which no JSON
    body or event can carry (one such folder made GET /api/discover a 500)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def worker_configs(folder: Path) -> list[Path]:
    """Worker json files in sort order, reserved stems excluded (hive §1.3). Links and
    special files are listed too (not silently skipped), so reading one refuses it by name.
    Listed through `open_folder`, so a folder swapped for a link lists nothing outside."""
    if not folder.is_dir():
        return []
    try:
        with open_folder(folder) as folder_fd, os.scandir(folder_fd) as entries:
            names = sorted(
                e.name
                for e in entries
                if e.name.endswith(".json")
                and not e.name.startswith(".")  # our own temp files (write_metadata)
                and not e.is_dir(follow_symlinks=False)
            )
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AgentFileError(f"{shown(folder)}: cannot be listed ({exc.strerror})") from None
    files = [folder / n for n in names if n[: -len(".json")] not in RESERVED_STEMS]
    for file in files:
        if not is_utf8(file):  # its name would be recorded (worker_name, config_path)
            raise AgentFileError(f"{shown(file)}: the file name is not valid UTF-8")
    if len(files) > MAX_WORKER_FILES:
        raise AgentFileError(f"{folder}: more than {MAX_WORKER_FILES} worker json files")
    return files


def read_json(path: Path, default: Any, limit: int = MAX_AGENT_FILE_BYTES) -> Any:
    """A JSON file inside an agent folder (`agent_files.read_agent_json`): `default` when
    missing or not JSON; AgentFileError (400, naming the file) when refused."""
    return read_agent_json(path, default, limit)


def read_triggers(folder: Path) -> list[dict[str, Any]]:
    """triggers.json entries: non-list reads as []; entries with a bad id or type are
    skipped (hive); a bad trigger_config, too many entries or a refused file is an
    AgentFileError naming the file and the trigger, so nothing of the load is appended."""
    path = folder / "triggers.json"
    raw = read_json(path, [], MAX_TRIGGERS_FILE_BYTES)
    if not isinstance(raw, list):
        return []
    if len(raw) > MAX_TRIGGERS:
        raise AgentFileError(f"{path}: {len(raw)} triggers; the limit is {MAX_TRIGGERS}")
    seen: set[str] = set()
    entries = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        tid, ttype = item.get("id"), item.get("trigger_type")
        if not isinstance(tid, str) or not is_valid_id(tid) or tid in seen:
            log.warning("triggers.json in %s: skipping entry with id %r", folder, tid)
            continue
        if ttype not in TRIGGER_TYPES:
            continue
        config = item.get("trigger_config")
        config = config if isinstance(config, dict) else {}
        try:
            validate_config(ttype, config)
        except ConfigError as exc:
            raise AgentFileError(f"{path}: trigger '{tid}': {exc.message}") from None
        seen.add(tid)
        entries.append(
            {
                "id": tid,
                "name": item["name"] if isinstance(item.get("name"), str) else tid,
                "trigger_type": ttype,
                "trigger_config": config,
                "task": item["task"] if isinstance(item.get("task"), str) else "",
                "enabled": item.get("enabled") is not False,  # hive 54fd8db; missing = true
            }
        )
    return entries


def agent_info(worker_name: str, worker: dict[str, Any], folder: Path) -> dict[str, Any]:
    """hive's AgentInfo for a one-worker colony (the worker is the single node)."""
    goal = worker.get("goal") if isinstance(worker.get("goal"), dict) else {}
    assert isinstance(goal, dict)
    tools = worker.get("tools") if isinstance(worker.get("tools"), list) else []
    return {
        "name": worker.get("name") if isinstance(worker.get("name"), str) else worker_name,
        "description": worker.get("description", "") or "",
        "goal_name": goal.get("name") or worker.get("name") or worker_name,
        "goal_description": goal.get("description", "") or "",
        "node_count": 1,
        "edge_count": 0,
        "nodes": [worker_name],
        "edges": [],
        "entry_node": worker_name,
        "terminal_nodes": [worker_name],
        "success_criteria": goal.get("success_criteria", []) or [],
        "constraints": goal.get("constraints", []) or [],
        "required_tools": tools,
        "has_tools_module": (folder / "tools.py").exists(),
    }


def read_colony(folder: Path, colony_id: str | None = None) -> ColonyFacts:
    """The facts of the colony at `folder` (validated); FileNotFoundError if no worker."""
    configs = worker_configs(folder) if folder.is_dir() else []
    if not configs:
        raise FileNotFoundError(str(folder))
    worker_path = configs[0]
    worker = read_json(worker_path, None)
    if not isinstance(worker, dict):
        raise FileNotFoundError(str(worker_path))
    info = agent_info(worker_path.stem, worker, folder)
    metadata = read_json(folder / "metadata.json", {})
    cid = colony_id or folder.name
    facts = ColonyFacts(
        colony_id=cid,
        colony_name=str(info["name"]) or cid,
        agent_path=str(folder),
        worker_name=worker_path.stem,
        description=str(info["description"]),
        goal=str(info["goal_name"]),
        node_count=1,
        intro_message=str(worker.get("intro_message") or ""),
        worker_info=info,
        metadata=metadata if isinstance(metadata, dict) else {},
        triggers=tuple(read_triggers(folder)),
    )
    check_recordable(facts, folder)
    return facts


def check_recordable(facts: ColonyFacts, folder: Path) -> None:
    """The facts fit one `worker_colony_loaded` event (a worker's description is recorded
    twice, so per-file limits alone do not guarantee it): else a 400 naming the folder."""
    loaded = colony_events(facts, 0.0)[0]
    size = len(orjson.dumps(loaded.data))
    if size > LOADED_EVENT_BUDGET:
        raise AgentFileError(
            f"{folder}: its worker, metadata.json and triggers.json add up to {size} bytes "
            f"in worker_colony_loaded; the limit is {LOADED_EVENT_BUDGET}"
        )


def write_metadata(folder: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into metadata.json atomically (temp file + rename; hive did not),
    all through one open descriptor on the folder (`open_folder`): a folder swapped for
    a link after validation made this write land outside the roots. A symlinked or
    special metadata.json is refused by the read (AgentFileError) before anything is
    written, so a link is never replaced by a copy of its target; so is a result over
    MAX_AGENT_FILE_BYTES (a 300 KB icon was written, then every load refused the file).
    The merge holds `lock_folder`, so concurrent merges keep each other's changes."""
    path = folder / "metadata.json"
    try:
        with open_folder(folder) as folder_fd:
            lock_folder(folder_fd)
            current = parse_agent_json(path, read_at(folder_fd, path), {})
            merged = {**(current if isinstance(current, dict) else {}), **changes}
            data = json_file_bytes(merged)
            if len(data) > MAX_AGENT_FILE_BYTES:
                raise AgentFileError(
                    f"{shown(path)}: would be {len(data)} bytes; "
                    f"the limit is {MAX_AGENT_FILE_BYTES}"
                )
            write_at(folder_fd, path, data)
    except FileNotFoundError:
        raise AgentFileError(f"{shown(folder)}: the folder is gone") from None
    except OSError as exc:
        raise AgentFileError(f"{shown(path)}: cannot be written ({exc.strerror})") from None
    return merged


def remove_folder(folder: Path) -> bool:
    """Delete `folder` (validated: resolved, inside a root) and all in it; False when
    there is no folder there. Removed by name from a checked descriptor on its parent
    (`open_folder`), and `shutil.rmtree` by descriptor follows no link: removing by
    path deleted an outside folder when a parent of `folder` was swapped for a link
    after validation."""
    try:
        with open_folder(folder.parent) as parent_fd:
            info = os.stat(folder.name, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                return False
            shutil.rmtree(folder.name, dir_fd=parent_fd)
    except FileNotFoundError:
        return False
    return True


def _iso_mtime(path: Path) -> str | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat()
    except OSError:
        return None


def discover_entry(folder: Path) -> dict[str, Any] | None:
    """hive's DiscoverEntry for one colony folder (counts filled in by the caller)."""
    configs = worker_configs(folder)
    if not configs:
        return None
    metadata = read_json(folder / "metadata.json", {})
    metadata = metadata if isinstance(metadata, dict) else {}
    workers: list[dict[str, Any]] = []
    tool_count = 0
    for config in configs:
        worker = read_json(config, {})
        worker = worker if isinstance(worker, dict) else {}
        goal = worker.get("goal") if isinstance(worker.get("goal"), dict) else {}
        tools = worker.get("tools") if isinstance(worker.get("tools"), list) else []
        tool_count = max(tool_count, len(tools or []))
        workers.append(
            {
                "name": config.stem,
                "config_path": str(config),
                "description": worker.get("description", "") or "",
                "tool_count": len(tools or []),
                "task": (goal or {}).get("description", "") or "",
                "spawned_at": worker.get("spawned_at"),
                "queen_name": metadata.get("queen_name"),
                "colony_name": metadata.get("colony_name") or folder.name,
            }
        )
    return {
        "path": str(folder),
        "name": folder.name.replace("_", " ").replace("-", " ").title(),
        "description": workers[0]["description"],
        "category": CATEGORY,
        "session_count": 0,
        "run_count": 0,
        "node_count": len(workers),
        "tool_count": tool_count,
        "tags": [],
        "last_active": metadata.get("updated_at") or _iso_mtime(folder),
        "created_at": metadata.get("created_at") or _iso_mtime(folder),
        "icon": metadata.get("icon"),
        "workers": workers,
    }


def discover(
    roots: Iterable[Path], skipped: list[dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Every colony folder directly under the roots, names de-duplicated (hive §1.3).

    A folder that cannot be read safely (a link out of the roots, a refused file) is
    skipped for this listing only, logged, and added to `skipped` (path and reason):
    one bad folder must not fail discovery for everyone."""
    roots = list(roots)
    entries: list[dict[str, Any]] = []
    names: set[str] = set()
    for root in roots:
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError:
            continue
        for child in children:
            try:
                folder = child.resolve()
                if not is_utf8(folder):
                    raise AgentFileError(f"{shown(child)}: the name is not valid UTF-8")
                if not inside(folder, roots):
                    raise AgentFileError(f"{child}: links outside the allowed agent roots")
                entry = discover_entry(folder)
            except (AgentFileError, OSError, RuntimeError) as exc:
                reason = exc.message if isinstance(exc, AgentFileError) else str(exc)
                log.warning("discover: skipping %s: %s", shown(child), reason)
                if skipped is not None:
                    skipped.append({"path": shown(child), "error": reason})
                continue
            if entry is None:
                continue
            base, n = entry["name"], 2
            while entry["name"] in names:
                entry["name"] = f"{base} ({n})"
                n += 1
            names.add(entry["name"])
            entries.append(entry)
    return entries
