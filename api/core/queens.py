"""Queen identities: hive's default queens plus any profile under HIVE_HOME.

There is no LLM here, so there is no classifier: an explicit `queen_name` wins,
else the resumed session's queen, else hive's fallback `queen_technology`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from api.core.agent_files import AgentFileError, inside, read_agent_bytes
from api.core.settings import hive_home
from projections.commands import Queen
from projections.ids import is_valid_id
from projections.session import DEFAULT_QUEEN_ID

DEFAULT_QUEENS = (
    "queen_technology",
    "queen_growth",
    "queen_product_strategy",
    "queen_finance_fundraising",
    "queen_legal",
    "queen_brand_design",
    "queen_talent",
    "queen_operations",
)
MAX_PROFILE_BYTES: Final = 64 * 1024
_KEY = re.compile(r"^(name|title)\s*:\s*(.+?)\s*$")


def queens_dir() -> Path:
    return hive_home() / "agents" / "queens"


def queen_folder(queen_id: str) -> Path | None:
    """The queen's folder, resolved, or None when there is none. A folder that is a link
    out of the queens folder is refused (AgentFileError naming it), never followed."""
    root = queens_dir()
    folder = root / queen_id
    try:
        if not folder.is_dir():
            return None
        real = folder.resolve()
    except (OSError, RuntimeError):
        raise AgentFileError(f"{folder}: cannot be resolved") from None
    if not inside(real, [root]):
        raise AgentFileError(f"{folder}: links outside {root}")
    return real


def _profile_fields(queen_id: str) -> dict[str, str]:
    """`name` and `title` from profile.yaml's top-level lines (no YAML parser needed).
    The file is read like any agent-folder file (no links, no special files, 64 KiB)."""
    fields: dict[str, str] = {}
    folder = queen_folder(queen_id)
    if folder is None:
        return fields
    data = read_agent_bytes(folder / "profile.yaml", MAX_PROFILE_BYTES)
    try:
        text = (data or b"").decode("utf-8")
    except UnicodeDecodeError:
        return fields
    for line in text.splitlines():
        match = _KEY.match(line)
        if match and match.group(1) not in fields:
            fields[match.group(1)] = match.group(2).strip("'\"")
    return fields


def find_queen(queen_id: str) -> Queen | None:
    """The queen with this id, or None (hive: 404 "Queen 'x' not found")."""
    if not is_valid_id(queen_id):
        return None
    if queen_id not in DEFAULT_QUEENS and queen_folder(queen_id) is None:
        return None
    fields = _profile_fields(queen_id)
    default_name = queen_id.removeprefix("queen_").replace("_", " ").title()
    return Queen(queen_id, fields.get("name") or default_name, fields.get("title", ""))


def default_queen() -> Queen:
    queen = find_queen(DEFAULT_QUEEN_ID)
    assert queen is not None
    return queen
