"""Identifiers shared by every layer: which strings are valid ids, and stream naming.

A session's stream id *is* its session id. Ids are checked against a strict
pattern before they reach the store or the filesystem, so a path parameter can
never smuggle in `..`, a slash or a NUL. Streams that are not sessions start
with `$`, which a session id can never do.
"""

from __future__ import annotations

import re
from typing import Final

ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_\-]|\.(?!\.)){0,127}$")
SYSTEM_STREAM_PREFIX: Final = "$"
AGENTS_STREAM: Final = "$agents"  # agent-folder level events (metadata edits, agent deletes)


def is_valid_id(value: str) -> bool:
    """Session and trigger ids: 1-128 of [A-Za-z0-9_.-], starting alphanumeric, no `..`."""
    return bool(ID_PATTERN.fullmatch(value))


def session_stream(session_id: str) -> str:
    return session_id


def is_session_stream(stream_id: str) -> bool:
    return not stream_id.startswith(SYSTEM_STREAM_PREFIX)
