"""Agent folders on disk: path validation, reading a colony's facts, discovery.

This is the only place that reads agent folders. What it reads is recorded in
events (`worker_colony_loaded`), so replaying the log never needs the folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from projections.commands import ColonyFacts
from projections.errors import Invalid
from projections.ids import is_valid_id

log = logging.getLogger("hivelog.colonies")

RESERVED_STEMS = frozenset({"agent", "flowchart", "triggers", "configuration", "metadata"})
TRIGGER_TYPES = frozenset({"timer", "webhook"})
CATEGORY = "Your Agents"


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
    for root in roots:
        root = root.resolve()
        if resolved != root and resolved.is_relative_to(root):
            return resolved
    raise AgentPathError(
        "agent_path must be inside an allowed agents directory "
        f"({', '.join(str(r) for r in roots)})"
    )


def worker_configs(folder: Path) -> list[Path]:
    """Worker json files in sort order, reserved stems excluded (hive §1.3)."""
    try:
        files = sorted(p for p in folder.glob("*.json") if p.is_file())
    except OSError:
        return []
    return [p for p in files if p.stem not in RESERVED_STEMS]


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def read_triggers(folder: Path) -> list[dict[str, Any]]:
    """triggers.json entries: unreadable or non-list reads as []; bad entries skipped."""
    raw = read_json(folder / "triggers.json", [])
    if not isinstance(raw, list):
        return []
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
        seen.add(tid)
        entries.append(
            {
                "id": tid,
                "name": item["name"] if isinstance(item.get("name"), str) else tid,
                "trigger_type": ttype,
                "trigger_config": config if isinstance(config, dict) else {},
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
    return ColonyFacts(
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


def write_metadata(folder: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into metadata.json atomically (temp file + rename; hive did not)."""
    path = folder / "metadata.json"
    current = read_json(path, {})
    merged = {**(current if isinstance(current, dict) else {}), **changes}
    fd, tmp = tempfile.mkstemp(prefix=".metadata-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(merged, handle, indent=2, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return merged


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


def discover(roots: Iterable[Path]) -> list[dict[str, Any]]:
    """Every colony folder directly under the roots, names de-duplicated (hive §1.3)."""
    entries: list[dict[str, Any]] = []
    names: set[str] = set()
    for root in roots:
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError:
            continue
        for folder in children:
            entry = discover_entry(folder.resolve())
            if entry is None:
                continue
            base, n = entry["name"], 2
            while entry["name"] in names:
                entry["name"] = f"{base} ({n})"
                n += 1
            names.add(entry["name"])
            entries.append(entry)
    return entries
