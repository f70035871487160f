"""Response shapes, as msgspec Structs: the OpenAPI document's response schemas are
generated from these (request bodies live beside their routes).

They describe, they do not encode: routes build their bodies from the
projections. Each lists the keys a client may rely on (required, when hive always
sends them) with their types; extra keys are allowed, since hive adds fields over
time. schemathesis checks real responses against the schemas made from them.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType


class Shape(msgspec.Struct, kw_only=True):
    """Base of every response shape (extra keys allowed). A key that may be absent
    but is never null defaults to UNSET (left out of `required`, no null in its type)."""


class Error(Shape, kw_only=True):
    """hive's refusal body; nothing was appended."""

    error: str


class Health(Shape, kw_only=True):
    status: str
    head_position: int | UnsetType = UNSET
    sessions: int | UnsetType = UNSET
    agents_loaded: int | UnsetType = UNSET


class LiveSession(Shape, kw_only=True):
    session_id: str
    colony_id: str | None = None
    colony_name: str | None = None
    has_worker: bool | UnsetType = UNSET
    agent_path: str | UnsetType = UNSET
    description: str | None = None
    goal: str | None = None
    node_count: int | UnsetType = UNSET
    loaded_at: float | None = None
    uptime_seconds: float | UnsetType = UNSET
    intro_message: str | None = None
    queen_phase: str | None = None
    queen_supports_images: bool | UnsetType = UNSET
    queen_id: str | None = None
    queen_name: str | None = None
    colony_spawned: bool | UnsetType = UNSET
    spawned_colony_name: str | None = None


class LiveSessions(Shape, kw_only=True):
    sessions: list[LiveSession]


class HistorySession(Shape, kw_only=True):
    session_id: str
    cold: bool | UnsetType = UNSET
    live: bool | UnsetType = UNSET
    has_messages: bool | UnsetType = UNSET
    created_at: float | str | None = None
    last_active_at: float | str | None = None
    agent_name: str | None = None
    agent_path: str | None = None
    last_message: str | None = None
    message_count: int | UnsetType = UNSET
    queen_id: str | None = None


class HistorySessions(Shape, kw_only=True):
    sessions: list[HistorySession]


class Deleted(Shape, kw_only=True):
    deleted: str


class SessionInfo(Shape, kw_only=True):
    """A live session's detail, or a cold session's info."""

    session_id: str


class Stopped(Shape, kw_only=True):
    session_id: str
    stopped: bool


class ColonyUnloaded(Shape, kw_only=True):
    session_id: str
    colony_unloaded: bool


class Revealed(Shape, kw_only=True):
    path: str


class EntryPoint(Shape, kw_only=True):
    id: str
    name: str | None = None
    entry_node: str | None = None
    trigger_type: str | None = None
    trigger_config: dict[str, Any] | UnsetType = UNSET
    task: str | None = None
    next_fire_in: float | None = None
    next_fire_at: float | None = None
    fire_count: int | None = None
    last_fired_at: float | None = None


class EntryPoints(Shape, kw_only=True):
    entry_points: list[EntryPoint]


class Colonies(Shape, kw_only=True):
    colonies: list[str]


class Trigger(Shape, kw_only=True):
    id: str
    trigger_type: str | None
    active: bool
    name: str | None = None
    trigger_config: dict[str, Any] | UnsetType = UNSET
    task: str | None = None
    next_fire_at: float | None = None
    next_fire_in: float | None = None
    fire_count: int | None = None
    last_fired_at: float | None = None


class Triggers(Shape, kw_only=True):
    session_id: str
    triggers: list[Trigger]
    live: bool | UnsetType = UNSET


class TriggerUpdated(Shape, kw_only=True):
    trigger_id: str
    task: Any
    trigger_config: dict[str, Any]


class TriggerStatus(Shape, kw_only=True):
    status: str
    trigger_id: str


class Envelope(Shape, kw_only=True):
    """hive's event envelope."""

    type: str
    stream_id: str | None = None
    node_id: str | None = None
    execution_id: str | None = None
    data: Any = None
    timestamp: str | None = None
    correlation_id: str | None = None
    colony_id: str | None = None
    run_id: str | None = None


class HistoryEvent(Envelope, kw_only=True):
    """hive's event envelope with its log position and stream version first."""

    position: int
    version: int


class HistoryPage(Shape, kw_only=True):
    events: list[HistoryEvent]
    session_id: str
    total: Annotated[int, Meta(description="events in the session's stream")]
    returned: int
    truncated: Annotated[bool, Meta(description="older events exist (hive's banner)")]
    limit: Annotated[int, Meta(ge=1, le=10_000)]
    has_more_older: bool
    has_more_newer: bool
    prev: Annotated[int | None, Meta(description="pass as before= for older")]
    next: Annotated[int, Meta(description="pass as after= for newer")]


class Ok(Shape, kw_only=True):
    ok: bool


class WebhookAccepted(Shape, kw_only=True):
    status: str
    fired: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    duplicates: list[dict[str, Any]] | UnsetType = UNSET


Discovered = dict[str, list[dict[str, Any]]]  # category -> agent folders

# Query and header parameters shared by several routes.
Position = Annotated[
    str, Meta(pattern="^[0-9]{1,18}$", description="a global log position (integer)")
]
EventTypes = Annotated[str, Meta(description="only these event types, comma-separated")]
StreamTypes = Annotated[
    str, Meta(description="comma-separated event types; default hive's list, `*` means all")
]
