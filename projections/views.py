"""hive's JSON shapes built from projected state: LiveSession, detail, cold info,
HistorySession, entry points. Pure: "now" and next-fire times are arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections.activity import snapshot_view
from projections.session import SessionState
from projections.triggers import TriggerState

NextFire = Callable[[SessionState, TriggerState], int | None]  # epoch ms, or None


def live_dict(state: SessionState, now: float) -> dict[str, Any]:
    """hive's `_session_to_live_dict` (LiveSession)."""
    colony = state.colony
    return {
        "session_id": state.session_id,
        "colony_id": colony.colony_id if colony else None,
        "colony_name": (colony.colony_name or colony.colony_id) if colony else None,
        "has_worker": colony is not None,
        "agent_path": colony.agent_path if colony else "",
        "description": colony.description if colony else "",
        "goal": colony.goal if colony else "",
        "node_count": colony.node_count if colony else 0,
        "loaded_at": state.loaded_at,
        "uptime_seconds": round(max(0.0, now - state.loaded_at), 1),
        "intro_message": colony.intro_message if colony else "",
        "queen_phase": state.queen_phase,
        "queen_supports_images": True,
        "queen_id": state.queen_id,
        "queen_name": state.queen_name,
        "colony_spawned": state.colony_spawned,
        "spawned_colony_name": state.spawned_colony_name,
        "spawned_colony_id": state.spawned_colony_id,
    }


def trigger_entry(
    state: SessionState, trigger: TriggerState, now: float, next_fire: NextFire | None
) -> dict[str, Any]:
    """One trigger as an entry point; `active` is ours (hive had no way to tell)."""
    entry: dict[str, Any] = {
        "id": trigger.id,
        "name": trigger.description or trigger.id,
        "entry_node": state.colony.worker_name if state.colony else "",
        "trigger_type": trigger.trigger_type,
        "trigger_config": trigger.trigger_config,
        "task": trigger.task,
        "active": trigger.active,
    }
    at = next_fire(state, trigger) if next_fire is not None and trigger.active else None
    if at is not None:
        entry["next_fire_in"] = max(0.0, at / 1000 - now)
        entry["next_fire_at"] = at
    if trigger.fire_count or trigger.last_fired_at is not None:
        entry["fire_count"] = trigger.fire_count
        if trigger.last_fired_at is not None:
            entry["last_fired_at"] = trigger.last_fired_at
    return entry


def entry_points(
    state: SessionState, now: float, next_fire: NextFire | None = None
) -> list[dict[str, Any]]:
    """The colony's `default` manual entry point, then one entry per trigger."""
    if state.colony is None:
        return []
    points: list[dict[str, Any]] = [
        {
            "id": "default",
            "name": "Default",
            "entry_node": state.colony.worker_name,
            "trigger_type": "manual",
            "trigger_config": {},
        }
    ]
    points.extend(trigger_entry(state, t, now, next_fire) for t in state.triggers.values())
    return points


def detail_dict(
    state: SessionState, now: float, next_fire: NextFire | None = None
) -> dict[str, Any]:
    """LiveSessionDetail: LiveSession plus entry points (always present, as at hive
    54fd8db; one per trigger, plus 3c390c9e's `default` entry when a colony is
    loaded) and 3c390c9e's `colonies` when one is loaded."""
    data = live_dict(state, now)
    if state.colony is not None:
        data["entry_points"] = entry_points(state, now, next_fire)
        data["colonies"] = [state.colony.colony_id]
    else:
        data["entry_points"] = [
            trigger_entry(state, t, now, next_fire) for t in state.triggers.values()
        ]
    return data


def cold_info(state: SessionState) -> dict[str, Any]:
    """GET /api/sessions/{id} for a session known from the log but not running."""
    colony = state.colony
    return {
        "session_id": state.session_id,
        "cold": True,
        "live": False,
        "has_messages": state.message_count > 0,
        "created_at": state.created_at,
        "agent_name": colony.colony_name if colony else None,
        "agent_path": colony.agent_path if colony else None,
        "colony_spawned": state.colony_spawned,
        "spawned_colony_name": state.spawned_colony_name,
        "spawned_colony_id": state.spawned_colony_id,
        "queen_phase": state.queen_phase,
    }


def history_entry(state: SessionState) -> dict[str, Any]:
    """HistorySession (§3.8)."""
    colony = state.colony
    return {
        "session_id": state.session_id,
        "cold": not state.live,
        "live": state.live,
        "has_messages": state.message_count > 0,
        "created_at": state.created_at,
        "last_active_at": state.last_active_at,
        "agent_name": colony.colony_name if colony else None,
        "agent_path": colony.agent_path if colony else None,
        "last_message": state.last_message or None,
        "message_count": state.message_count,
        "queen_id": state.queen_id,
        # ours (the console's sessions list): events in the stream, the node running it
        "event_count": state.version,
        "runner_node": state.runner_node,
    }


def stats_dict(state: SessionState) -> dict[str, Any]:
    """Runtime stats in hive's shape; `{}` with no colony. Nothing executes here, so
    execution counters are zero; `event_bus` counts the session's recorded events."""
    if state.colony is None:
        return {}
    points = entry_points(state, 0.0)
    return {
        "running": state.live,
        "entry_points": len(points),
        "streams": {
            p["id"]: {
                "stream_id": p["id"],
                "entry_point": p["id"],
                "running": False,
                "total_executions": 0,
                "completed_executions": 0,
                "status_counts": {},
                "max_concurrent": 10,
                "available_slots": 10,
            }
            for p in points
        },
        "goal_id": state.colony.goal,
        "outcome_aggregator": None,
        "event_bus": {
            "total_events": state.version,
            "subscriptions": 0,
            "events_by_type": dict(state.event_counts),
        },
        "state_manager": None,
    }


def snapshot_dict(state: SessionState, now: float) -> dict[str, Any]:
    """GET /api/sessions/{id}/snapshot (hive 54fd8db §2.2); `snapshot_seq` is the
    session's stream version, the space every served event's `seq` lives in."""
    last = state.last_active_at or None
    return snapshot_view(
        state.activity, state.version, now, last, state.activity.last_queen_event_at(last)
    )


def head_phase(state: SessionState) -> str:
    """hive 54fd8db's two phases for a recorded one (3c390c9e names mapped)."""
    return "colony" if state.colony is not None else "independent"


def live_row(state: SessionState, now: float) -> dict[str, Any]:
    """One row of GET /api/sessions/live (RS:883-916), from the activity fold."""
    snap = snapshot_dict(state, now)
    tools = snap["current_tool_calls"]
    return {
        "session_id": state.session_id,
        "colony_id": state.colony.colony_id if state.colony else None,
        "queen_id": state.queen_id,
        "queen_name": state.queen_name or None,
        "phase": head_phase(state),
        "is_executing": snap["is_executing"],
        "awaiting_input": snap["awaiting_input"],
        "interrupted": snap["interrupted"],
        "interrupt_cause": snap["interrupt_cause"],
        "queen_busy_reason": snap["queen_busy_reason"],
        "park_reason": snap["park_reason"],
        "current_tool_name": tools[0]["name"] if tools else None,
        "current_tool_count": len(tools),
        "active_worker_count": state.activity.worker_count,
        "last_event_at": snap["last_event_at"],
        "snapshot_seq": snap["snapshot_seq"],
    }


LIVE_SIGNATURE_KEYS = (
    "session_id",
    "is_executing",
    "awaiting_input",
    "interrupted",
    "current_tool_name",
    "queen_busy_reason",
    "park_reason",
    "active_worker_count",
)


def live_signature(rows: list[dict[str, Any]]) -> tuple[tuple[Any, ...], ...]:
    """What makes /api/sessions/live send a frame at once (RS:945-965); any other
    change waits for the 30 s resend."""
    return tuple(tuple(row[k] for k in LIVE_SIGNATURE_KEYS) for row in rows)


def colony_row(state: SessionState, *, overlay: bool) -> dict[str, Any]:
    """A row of /api/colonies/{id}/sessions and /api/sessions/history (§2.4): the
    HistorySession plus `queen_id`; `overlay` applies hive's live overlay."""
    row = history_entry(state)
    if not overlay:
        row["cold"], row["live"] = True, False
    colony = state.colony
    if overlay and state.live and colony is not None:
        row["agent_name"] = row["agent_name"] or colony.colony_id
        row["agent_path"] = row["agent_path"] or colony.agent_path
    return row
