"""Queen identities: hive's default queens plus any profile under HIVE_HOME.

There is no LLM here, so there is no classifier: an explicit `queen_name` wins,
else the resumed session's queen, else hive's fallback `queen_technology`.
"""

from __future__ import annotations

import re
from pathlib import Path

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
_KEY = re.compile(r"^(name|title)\s*:\s*(.+?)\s*$")


def queens_dir() -> Path:
    return hive_home() / "agents" / "queens"


def _profile_fields(queen_id: str) -> dict[str, str]:
    """`name` and `title` from profile.yaml's top-level lines (no YAML parser needed)."""
    path = queens_dir() / queen_id / "profile.yaml"
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
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
    if queen_id not in DEFAULT_QUEENS and not (queens_dir() / queen_id).is_dir():
        return None
    fields = _profile_fields(queen_id)
    default_name = queen_id.removeprefix("queen_").replace("_", " ").title()
    return Queen(queen_id, fields.get("name") or default_name, fields.get("title", ""))


def default_queen() -> Queen:
    queen = find_queen(DEFAULT_QUEEN_ID)
    assert queen is not None
    return queen
