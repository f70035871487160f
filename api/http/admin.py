"""Operator routes for the console: POST /api/admin/audit and GET /api/admin/nodes.

The console's "audit" button calls this. It runs `tools.audit.audit` itself (the
same checks, the same report, never a subprocess) on its own read-only source, in
a worker thread with its own event loop: the audit is one long CPU-bound pass
over the log, and the service's loop must keep answering while it runs. One
audit at a time per process (a second request is a 409), since two passes
would only halve each other's speed. Protected by the token like every /api route.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.nodes import NODE_PREFIX
from api.http.contract import documented
from api.http.responses import JSONResponse, error
from api.http.state import parts
from tools.audit import audit
from tools.audit_checks import CHECKS
from tools.audit_source import open_source
from tools.logio import UsageError

_running = threading.Lock()


async def _audit_report(url: str) -> dict[str, Any]:
    source = await open_source(url)
    try:
        report = await audit(source)
    finally:
        await source.close()
    return report.to_dict()


def run_audit(url: str) -> dict[str, Any]:
    """The audit report of the log at `url` (blocking: call it from a thread)."""
    started = time.perf_counter()
    body = asyncio.run(_audit_report(url))
    body["checks"] = list(CHECKS)
    body["seconds"] = round(time.perf_counter() - started, 3)
    return body


@documented("Run the same checks as `hivelog audit` on this log (one at a time)", errors=(409,))
async def run_audit_route(request: Request) -> Response:
    """POST /api/admin/audit: 200 with the report (`ok` false when faults were found)."""
    if not _running.acquire(blocking=False):
        return error(409, "An audit is already running")
    try:
        url = parts(request).settings.db_url
        try:
            body = await asyncio.to_thread(run_audit, url)
        except UsageError as exc:
            return error(409, f"Audit could not run: {exc}")
    finally:
        _running.release()
    return JSONResponse(body)


MAX_LEASES = 200


@documented("Live nodes (unexpired liveness leases) and the other leases held")
async def nodes_route(request: Request) -> Response:
    """GET /api/admin/nodes: the nodes whose liveness lease is unexpired, and every
    other lease held right now (timer claims), for the console's log view."""
    the_parts = parts(request)
    now = time.time()
    held = await the_parts.store.leases.holders("")
    nodes = [
        {
            "node_id": lease.owner,
            "fence": lease.fence,
            "expires_at": lease.expires_at,
            "expires_in": round(max(lease.expires_at - now, 0.0), 3),
        }
        for lease in held
        if lease.name.startswith(NODE_PREFIX)
    ]
    others = [
        {
            "name": lease.name,
            "owner": lease.owner,
            "fence": lease.fence,
            "expires_in": round(max(lease.expires_at - now, 0.0), 3),
        }
        for lease in held
        if not lease.name.startswith(NODE_PREFIX)
    ]
    body = {
        "this_node": the_parts.node.node_id,
        "ttl": the_parts.node.ttl,
        "nodes": nodes,
        "leases": others[:MAX_LEASES],
        "leases_total": len(others),
    }
    return JSONResponse(body)


routes = [
    Route("/api/admin/audit", run_audit_route, methods=["POST"]),
    Route("/api/admin/nodes", nodes_route, methods=["GET"]),
]
