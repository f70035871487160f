"""Webhook triggers, served by the main server at `/api/webhooks/{path}`.

hive bound a second server on the first trigger's port, added routes only at its
start and left them after deactivation (hits got 202 and vanished). Here one
route serves every webhook trigger, matched against the projection on each hit:
only active triggers whose `path` and `methods` match; anything else is 404. A
trigger with a `secret` needs a valid `X-Hub-Signature-256` (HMAC-SHA256 of the
body) or the hit is refused with 401. Each accepted hit is recorded in its
session as `webhook_received`, then `trigger_fired` (or `trigger_fire_skipped`
with the gating reason), with credentials and cookies stripped from the headers.
A hit the session was too busy to record (its appends kept conflicting) is a 503 with
`Retry-After`, so the sender retries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.service import Decide
from api.http import shapes
from api.http.body import read_body
from api.http.contract import documented
from api.http.responses import JSONResponse, error
from api.http.triggers import clock_of, service_of
from eventstore import MAX_EVENT_BYTES, DuplicateEventId, InvalidEvent
from projections.errors import Conflict, DomainError
from projections.schedule import FIRE_NAMESPACE, WEBHOOK_METHODS
from projections.trigger_commands import WebhookHit, decide_webhook, webhook_matches

SIGNATURE_HEADER = "x-hub-signature-256"
DELIVERY_HEADERS = ("x-github-delivery", "x-delivery-id", "idempotency-key")
_SECRET_HEADER = re.compile(
    r"authorization|cookie|token|secret|password|passwd|api[-_]?key|signature|credential|session",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
RECORD_BUDGET = MAX_EVENT_BYTES - 16 * 1024  # what a hit may take of one event (1 MiB)


def recorded_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers as they go into the log: credential-like ones redacted, never stored."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = REDACTED if _SECRET_HEADER.search(key) else value
    return out


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """HMAC check of `X-Hub-Signature-256`. A non-ASCII header is simply wrong (401):
    `compare_digest` raises TypeError on non-ASCII str, which was a 500. An empty
    secret matches nothing: anyone can sign with the empty key, so it only looked
    protected."""
    if not secret or not header or not header.isascii() or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def _payload(body: bytes, content_type: str) -> Any:
    """JSON when it parses as JSON, else the text (hive recorded the parsed body)."""
    if not body:
        return None
    if "json" in content_type or body[:1] in (b"{", b"["):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return body.decode("utf-8", errors="replace")


def unrecordable(headers: dict[str, str], payload: Any, query: dict[str, str]) -> Response | None:
    """A 4xx when the hit cannot be stored as one event (JSON nested deeper than the
    encoder allows, or escaping made it larger than the per-event limit), else None."""
    try:
        size = len(orjson.dumps({"headers": headers, "payload": payload, "query": query}))
    except TypeError:
        return error(400, "Webhook payload cannot be recorded: JSON nested too deeply")
    if size > RECORD_BUDGET:
        return error(
            413, f"Webhook too large to record: {size} bytes as JSON, over {RECORD_BUDGET}"
        )
    return None


def _delivery_ids(
    delivery: str | None, session_id: str, trigger_id: str
) -> tuple[str | None, str | None]:
    if not delivery:
        return None, None
    base = f"{session_id}\x00{trigger_id}\x00{delivery}"
    return (
        str(uuid.uuid5(FIRE_NAMESPACE, "hook\x00" + base)),
        str(uuid.uuid5(FIRE_NAMESPACE, "hookfire\x00" + base)),
    )


def _decider(session_id: str, trigger_id: str, hit: WebhookHit) -> Decide:
    return lambda state: decide_webhook(state, session_id, trigger_id, hit)


@documented(
    "A webhook hit for the active webhook triggers on this path (any body)",
    status=202,
    response=shapes.WebhookAccepted,
    errors=(401, 404, 405, 413, 503),
)
async def receive(request: Request) -> Response:
    path = "/" + request.path_params["path"]
    method = request.method.upper()
    service = service_of(request)
    matches: list[tuple[str, str, str | None]] = []  # (session, trigger, secret)
    path_known = False
    for session_id, state in list(service.catalogue.sessions.items()):
        for trigger in state.triggers.values():
            config = trigger.trigger_config
            if trigger.trigger_type != "webhook" or not trigger.active:
                continue
            if config.get("path") != path:
                continue
            path_known = True
            if webhook_matches(trigger, path, method):
                secret = config.get("secret")
                matches.append(
                    (session_id, trigger.id, secret if isinstance(secret, str) else None)
                )
    if not matches:
        if path_known:
            return error(405, f"Method {method} not allowed for webhook {path}")
        return error(404, f"No active webhook for {path}")
    body = await read_body(request)  # the size cap is BodyLimitMiddleware's (413)
    signature = request.headers.get(SIGNATURE_HEADER)
    allowed = [
        (s, t)
        for s, t, secret in matches
        if secret is None or signature_ok(secret, body, signature)
    ]
    if not allowed:
        return error(401, "Invalid or missing X-Hub-Signature-256")
    delivery = next((request.headers[h] for h in DELIVERY_HEADERS if h in request.headers), None)
    headers = recorded_headers(request.headers.items())
    content = _payload(body, request.headers.get("content-type", ""))
    query = dict(request.query_params)
    if (refusal := unrecordable(headers, content, query)) is not None:
        return refusal
    now = clock_of(request).now()
    fired: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    duplicates: list[dict[str, str]] = []
    busy: list[dict[str, str]] = []
    for session_id, trigger_id in allowed:
        hook_id, fire_id = _delivery_ids(delivery, session_id, trigger_id)
        hit = WebhookHit(path, method, headers, content, query, now, hook_id, fire_id)
        ref = {"session_id": session_id, "trigger_id": trigger_id}
        try:
            before = service.get(session_id)
            state = await service.execute(session_id, _decider(session_id, trigger_id, hit))
        except DuplicateEventId:
            duplicates.append(ref)
            continue
        except InvalidEvent as exc:
            # Within the HTTP cap, but with its headers too big for one event (1 MiB):
            # refused whole, like any other oversized body (every trigger gets the same).
            return error(413, f"Webhook too large to record: {exc}")
        except Conflict:
            # The session kept changing under us (execute gave up retrying): nothing
            # recorded. This was swallowed as "went away" and answered 404, so the
            # sender never retried and the hit was lost.
            busy.append(ref)
            continue
        except DomainError:
            continue  # the session went away meanwhile
        if before is not None and state.version == before.version:
            continue  # deactivated meanwhile
        if trigger_id in state.triggers and state.live and state.colony is not None:
            fired.append(ref)
        else:
            skipped.append(ref)
    if busy:
        # 503 so the sender retries; a retry with the same delivery id header finds
        # the triggers that did fire as duplicates.
        response = error(
            503,
            f"Session busy, webhook not recorded for {len(busy)} trigger(s); retry",
            fired=fired,
            skipped=skipped,
            busy=busy,
        )
        response.headers["Retry-After"] = "1"
        return response
    if not fired and not skipped and not duplicates:
        return error(404, f"No active webhook for {path}")
    body_out: dict[str, Any] = {"status": "accepted", "fired": fired, "skipped": skipped}
    if duplicates:
        body_out["duplicates"] = duplicates
    return JSONResponse(body_out, status_code=202)


routes = [Route("/api/webhooks/{path:path}", receive, methods=list(WEBHOOK_METHODS))]
