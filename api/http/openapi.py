"""GET /openapi.json: an OpenAPI 3.1 description of every route the app serves.

Written by hand from the hive contract (routes §3, events §2.1, SSE §5.5) rather
than generated from docstrings: the shapes are hive's, and a hand-written
document is the one a client can trust. tests/test_openapi.py fails when an app
route is missing here; the schemathesis run checks real responses against it.
Response objects allow extra keys (hive adds fields over time); required keys
and their types are checked.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.http.colonies_routes import ResolveMissed
from api.http.sessions import CreateSession
from api.http.triggers import CreateTriggerBody

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
OBJ: Schema = {"type": "object"}
NULL_STR: Schema = {"type": ["string", "null"]}


def model_schema(model: type[Any]) -> Schema:
    """A request body's schema, generated from the msgspec Struct that validates it."""
    (only,), components = msgspec.json.schema_components([model], ref_template="{name}")
    schema: Schema = components[only["$ref"]]
    return schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], props: dict[str, Schema], *, extra: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": required, "properties": props}
    if not extra:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


SCHEMAS: dict[str, Schema] = {
    "Error": obj(["error"], {"error": STR}),
    "Envelope": obj(
        ["type"],
        {
            "type": STR,
            "stream_id": NULL_STR,
            "node_id": NULL_STR,
            "execution_id": NULL_STR,
            "data": {},
            "timestamp": NULL_STR,
            "correlation_id": NULL_STR,
            "colony_id": NULL_STR,
            "run_id": NULL_STR,
        },
    ),
    "HistoryEvent": {
        "description": "hive's event envelope with its log position and stream version first.",
        "allOf": [
            obj(["position", "version"], {"position": INT, "version": INT, "seq": INT}),
            ref("Envelope"),
        ],
    },
    "HistoryPage": obj(
        [
            "events",
            "session_id",
            "total",
            "returned",
            "truncated",
            "limit",
            "has_more_older",
            "has_more_newer",
            "prev",
            "next",
        ],
        {
            "events": array(ref("HistoryEvent")),
            "session_id": STR,
            "total": {**INT, "description": "events in the session's stream"},
            "returned": INT,
            "truncated": {**BOOL, "description": "older events exist (hive's banner)"},
            "limit": {**INT, "minimum": 1, "maximum": 10000},
            "start_index": INT,
            "start_offset": INT,
            "has_more_older": BOOL,
            "has_more_newer": BOOL,
            "prev": {"type": ["integer", "null"], "description": "pass as before= for older"},
            "next": {**INT, "description": "pass as after= for newer"},
        },
    ),
    "LiveSession": obj(
        ["session_id"],
        {
            "session_id": STR,
            "colony_id": NULL_STR,
            "colony_name": NULL_STR,
            "has_worker": BOOL,
            "agent_path": STR,
            "description": NULL_STR,
            "goal": NULL_STR,
            "node_count": INT,
            "loaded_at": {"type": ["number", "null"]},
            "uptime_seconds": NUM,
            "intro_message": NULL_STR,
            "queen_phase": NULL_STR,
            "queen_supports_images": BOOL,
            "queen_id": NULL_STR,
            "queen_name": NULL_STR,
            "colony_spawned": BOOL,
            "spawned_colony_name": NULL_STR,
        },
    ),
    "HistorySession": obj(
        ["session_id"],
        {
            "session_id": STR,
            "cold": BOOL,
            "live": BOOL,
            "has_messages": BOOL,
            "created_at": {"type": ["number", "string", "null"]},
            "last_active_at": {"type": ["number", "string", "null"]},
            "agent_name": NULL_STR,
            "agent_path": NULL_STR,
            "last_message": NULL_STR,
            "message_count": INT,
            "queen_id": NULL_STR,
        },
    ),
    "EntryPoint": obj(
        ["id"],
        {
            "id": STR,
            "name": NULL_STR,
            "entry_node": NULL_STR,
            "trigger_type": NULL_STR,
            "trigger_config": OBJ,
            "task": NULL_STR,
            "next_fire_in": {"type": ["number", "null"]},
            "next_fire_at": {"type": ["number", "null"]},
            "fire_count": {"type": ["integer", "null"]},
            "last_fired_at": {"type": ["number", "null"]},
        },
    ),
    "Trigger": obj(
        ["id", "trigger_id", "trigger_type", "active", "enabled"],
        {
            "id": STR,
            "trigger_id": STR,
            "enabled": BOOL,
            "next_due_at": NULL_STR,
            "name": NULL_STR,
            "trigger_type": NULL_STR,
            "trigger_config": OBJ,
            "task": NULL_STR,
            "active": BOOL,
            "next_fire_at": {"type": ["number", "null"]},
            "next_fire_in": {"type": ["number", "null"]},
            "fire_count": {"type": ["integer", "null"]},
            "last_fired_at": NULL_STR,
        },
    ),
    "CreateTrigger": model_schema(CreateTriggerBody),
    "ResolveMissed": model_schema(ResolveMissed),
    "TriggerStatus": obj(["status", "trigger_id"], {"status": STR, "trigger_id": STR}),
    "CreateSession": model_schema(CreateSession),
    "LoadColony": obj(
        ["agent_path"],
        {"agent_path": STR, "colony_id": NULL_STR, "model": NULL_STR},
        extra=False,
    ),
    "UpdateTrigger": {
        "type": "object",
        "properties": {"task": STR, "trigger_config": OBJ},
        "additionalProperties": False,
    },
    "AgentPath": obj(["agent_path"], {"agent_path": STR}, extra=False),
    "AgentMetadata": obj(["agent_path"], {"agent_path": STR, "icon": NULL_STR}, extra=False),
}


def json_body(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {"4XX": json_body(ref("Error"), "refused; nothing was appended")}
SESSION_ID: Schema = {"name": "session_id", "in": "path", "required": True, "schema": STR}
TRIGGER_ID: Schema = {"name": "trigger_id", "in": "path", "required": True, "schema": STR}
TYPES_PARAM: Schema = {
    "name": "types",
    "in": "query",
    "required": False,
    "schema": STR,
    "description": "comma-separated event types",
}
POSITION: Schema = {"type": "string", "pattern": "^[0-9]{1,18}$"}


def op(
    summary: str,
    responses: dict[str, Schema],
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    body_required: bool = True,
) -> Schema:
    operation: Schema = {"summary": summary, "responses": {**responses, **ERRORS}}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    return operation


SSE_RESPONSE = {
    "200": {
        "description": "`id: <position>` and `data: <HistoryEvent JSON>` messages, "
        "`: keepalive` comments",
        "content": {"text/event-stream": {"schema": STR}},
    }
}
SSE_PARAMS = [
    TYPES_PARAM,
    {"name": "after", "in": "query", "required": False, "schema": POSITION},
    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": POSITION},
]

S = "/api/sessions/{session_id}"
T = S + "/triggers/{trigger_id}"
COLONY_ID: Schema = {"name": "colony_id", "in": "path", "required": True, "schema": STR}
NOT_IMPLEMENTED = {"501": json_body(ref("Error"), "needs hive's runtime")}

PATHS: dict[str, dict[str, Schema]] = {
    "/api/health": {
        "get": op(
            "Liveness and the log head",
            {"200": json_body(obj(["status"], {"status": STR, "head_position": INT}))},
        )
    },
    "/api/sessions": {
        "post": op(
            "Create (or resume) a session",
            {"201": json_body(ref("LiveSession")), "200": json_body(ref("LiveSession"))},
            body=ref("CreateSession"),
            body_required=False,
        ),
        "get": op(
            "Live sessions in creation order",
            {"200": json_body(obj(["sessions"], {"sessions": array(ref("LiveSession"))}))},
        ),
    },
    "/api/sessions/history": {
        "get": op(
            "Every session on record, newest activity first",
            {"200": json_body(obj(["sessions"], {"sessions": array(ref("HistorySession"))}))},
        )
    },
    "/api/sessions/history/{session_id}": {
        "delete": op(
            "Delete a session and erase its events",
            {"200": json_body(obj(["deleted"], {"deleted": STR}))},
            params=[SESSION_ID],
        )
    },
    S: {
        "get": op(
            "A live session's detail, or a cold session's info",
            {
                "200": json_body(obj(["session_id"], {"session_id": STR})),
                "202": json_body(obj(["session_id", "loading"], {"session_id": STR})),
            },
            params=[SESSION_ID],
        ),
        "delete": op(
            "Stop a live session",
            {
                "200": json_body(
                    obj(["session_id", "stopped"], {"session_id": STR, "stopped": BOOL})
                )
            },
            params=[SESSION_ID],
        ),
    },
    S + "/colony": {
        "post": op(
            "Load a colony into the session",
            {"200": json_body(ref("LiveSession"))},
            params=[SESSION_ID],
            body=ref("LoadColony"),
        ),
        "delete": op(
            "Unload the session's colony",
            {
                "200": json_body(
                    obj(
                        ["session_id", "colony_unloaded"],
                        {"session_id": STR, "colony_unloaded": BOOL},
                    )
                )
            },
            params=[SESSION_ID],
        ),
    },
    S + "/reveal": {
        "post": op(
            "The session's folder path",
            {"200": json_body(obj(["path"], {"path": STR}))},
            params=[SESSION_ID],
        )
    },
    S + "/stats": {
        "get": op("Runtime stats ({} with no colony)", {"200": json_body(OBJ)}, params=[SESSION_ID])
    },
    S + "/entry-points": {
        "get": op(
            "Entry points with next-fire times",
            {"200": json_body(obj(["entry_points"], {"entry_points": array(ref("EntryPoint"))}))},
            params=[SESSION_ID],
        )
    },
    S + "/colonies": {
        "get": op(
            "The session's colony ids",
            {"200": json_body(obj(["colonies"], {"colonies": array(STR)}))},
            params=[SESSION_ID],
        )
    },
    S + "/triggers": {
        "get": op(
            "The session's triggers (the authoritative projection)",
            {
                "200": json_body(
                    obj(
                        ["session_id", "triggers"],
                        {"session_id": STR, "live": BOOL, "triggers": array(ref("Trigger"))},
                    )
                )
            },
            params=[SESSION_ID],
        ),
        "post": op(
            "Create a timer schedule (hive 54fd8db)",
            {
                "200": json_body(
                    obj(
                        ["trigger_id", "name", "trigger_type", "trigger_config"],
                        {"trigger_id": STR, "name": STR, "trigger_config": OBJ},
                    )
                )
            },
            params=[SESSION_ID],
            body=ref("CreateTrigger"),
        ),
    },
    T: {
        "patch": op(
            "Change a trigger's task or config",
            {
                "200": json_body(
                    obj(
                        ["trigger_id", "task", "trigger_config"],
                        {"trigger_id": STR, "trigger_config": OBJ},
                    )
                )
            },
            params=[SESSION_ID, TRIGGER_ID],
            body=ref("UpdateTrigger"),
        )
    },
    T + "/activate": {
        "post": op(
            "Activate a trigger",
            {"200": json_body(ref("TriggerStatus"))},
            params=[SESSION_ID, TRIGGER_ID],
        )
    },
    T + "/deactivate": {
        "post": op(
            "Deactivate a trigger",
            {"200": json_body(ref("TriggerStatus"))},
            params=[SESSION_ID, TRIGGER_ID],
        )
    },
    T + "/run": {
        "post": op(
            "Fire a trigger now",
            {"200": json_body(ref("TriggerStatus"))},
            params=[SESSION_ID, TRIGGER_ID],
        )
    },
    S + "/events/history": {
        "get": op(
            "The newest events (hive's shape), or a page by position cursor",
            {"200": json_body(ref("HistoryPage"))},
            params=[
                SESSION_ID,
                {"name": "limit", "in": "query", "required": False, "schema": STR},
                {"name": "before", "in": "query", "required": False, "schema": POSITION},
                {"name": "after", "in": "query", "required": False, "schema": POSITION},
                TYPES_PARAM,
                {"name": "before_offset", "in": "query", "required": False, "schema": STR},
                {"name": "before_index", "in": "query", "required": False, "schema": STR},
            ],
        )
    },
    S + "/events": {
        "get": op(
            "Live events of one session (SSE), resumable",
            SSE_RESPONSE,
            params=[SESSION_ID, *SSE_PARAMS],
        )
    },
    "/api/events": {
        "get": op("Live events of every session (SSE), resumable", SSE_RESPONSE, params=SSE_PARAMS)
    },
    # hive 54fd8db routes (api/http/live.py, colonies_routes.py, runtime.py, triggers.py)
    "/api/sessions/live": {
        "get": op(
            "Live sessions: `event: snapshot` frames (hive 54fd8db)",
            {
                "200": {
                    "description": "`event: snapshot` / `data: {sessions, network}` frames",
                    "content": {"text/event-stream": {"schema": STR}},
                }
            },
        )
    },
    S + "/snapshot": {
        "get": op("What the queen is doing now", {"200": json_body(OBJ)}, params=[SESSION_ID])
    },
    S + "/presence": {
        "post": op(
            "A client is watching a live session",
            {"200": json_body(obj(["ok", "resumed"], {"ok": BOOL, "resumed": BOOL}))},
            params=[SESSION_ID],
        )
    },
    "/api/colonies/{colony_id}/sessions": {
        "get": op(
            "Sessions bound to a colony, newest first",
            {"200": json_body(obj(["sessions"], {"sessions": array(ref("HistorySession"))}))},
            params=[COLONY_ID],
        )
    },
    "/api/colonies/{colony_id}/active-session": {
        "get": op(
            "The colony's first session with messages",
            {"200": json_body(obj(["session"], {"session": {"type": ["object", "null"]}}))},
            params=[COLONY_ID],
        )
    },
    S + "/colony/resolve_missed": {
        "post": op(
            "Record a decision per missed trigger",
            {"200": json_body(obj(["results"], {"results": OBJ}))},
            params=[SESSION_ID],
            body=ref("ResolveMissed"),
        )
    },
    S + "/dismiss-colony-pivot": {
        "post": op(
            "No pivot is ever pending here",
            {"200": json_body(obj(["dismissed"], {"dismissed": BOOL, "reason": STR}))},
            params=[SESSION_ID],
        )
    },
    S + "/report-bundle": {
        "post": op("Not implemented (501)", NOT_IMPLEMENTED, params=[SESSION_ID])
    },
    S + "/attachment/{filename}": {
        "get": op(
            "Attachments are not stored here (404)",
            {},
            params=[
                SESSION_ID,
                {"name": "filename", "in": "path", "required": True, "schema": STR},
            ],
        )
    },
    S + "/upload-attachment": {
        "post": op("Not implemented (501)", NOT_IMPLEMENTED, params=[SESSION_ID])
    },
    S + "/live_tools": {"get": op("Not implemented (501)", NOT_IMPLEMENTED, params=[SESSION_ID])},
    "/api/discover": {
        "get": op(
            "Agent folders by category",
            {"200": json_body({"type": "object", "additionalProperties": array(OBJ)})},
        )
    },
    "/api/agents": {
        "delete": op(
            "Delete an agent folder (stops sessions using it)",
            {"200": json_body(obj(["deleted"], {"deleted": STR}))},
            body=ref("AgentPath"),
        )
    },
    "/api/agents/metadata": {
        "patch": op(
            "Merge an icon into the agent's metadata.json",
            {"200": json_body(obj(["ok"], {"ok": BOOL}))},
            body=ref("AgentMetadata"),
        )
    },
    "/api/webhooks/{path}": {
        method: op(
            "A webhook hit for the active webhook triggers on this path (any body)",
            {
                "202": json_body(
                    obj(
                        ["status", "fired", "skipped"],
                        {"status": STR, "fired": array(OBJ), "skipped": array(OBJ)},
                    )
                )
            },
            params=[{"name": "path", "in": "path", "required": True, "schema": STR}],
        )
        for method in ("get", "post", "put", "patch", "delete", "options")
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {"description": "text format", "content": {"text/plain": {"schema": STR}}},
                **ERRORS,
            },
        }
    },
    "/openapi.json": {"get": op("This document", {"200": json_body(OBJ)})},
}

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "hivelog",
        "version": "0.1.0",
        "description": "Event-sourced sessions and triggers for hive. With a token "
        "configured, every path except /api/health, /openapi.json and webhooks needs "
        "the X-Hive-Token header (401 otherwise).",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "hiveToken": {"type": "apiKey", "in": "header", "name": "X-Hive-Token"}
        },
    },
}

_ENCODED = orjson.dumps(DOCUMENT)


async def openapi_json(request: Request) -> Response:
    return Response(_ENCODED, media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
