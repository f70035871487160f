"""Live events over Server-Sent Events: per session, and the whole log at GET /api/events.

Each message is hive's `data: <envelope json>` with `id: <global position>`, so a
client that reconnects with `Last-Event-ID` (or `?after=`) gets every later event
exactly once: first caught up from the log, then live. One store subscription
(the `Hub`) fans events out to every client's bounded queue; a client whose queue
fills is disconnected and resumes from its last id, so a slow reader never
stalls anyone else. `: keepalive` comments keep idle connections open.

Our own ~150 lines rather than sse-starlette: what matters here (the gapless
hand-over from catch-up to live, the per-client bounded queue with disconnect,
ids as positions) has to be written either way, and the rest (framing, pings,
disconnect detection) is a few lines of ASGI; no dependency to track.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Annotated, Any

import orjson
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.core.supervisor import RestartPolicy, Supervisor
from api.core.tasks import stop_task, stop_tasks
from api.http import shapes
from api.http.contract import documented
from api.http.eventjson import event_json
from api.http.history import QueryError, parse_position, parse_types, session_stream_info
from api.http.responses import error
from api.http.state import parts
from eventstore import EventStore, RecordedEvent, StreamDeleted
from eventstore.base import SUBSCRIBE_BATCH, wait_for_ticket
from projections.envelope import envelope
from projections.ids import is_session_stream
from projections.session import SessionState
from projections.trigger_commands import stats_config
from projections.views import snapshot_dict

log = logging.getLogger("hivelog.sse")

KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 1000  # hive's per-client queue
CATCH_UP_BATCH = 500
REPLAY_WINDOW = 1000  # hive replays from its 1000-event ring
HUB_RESTARTS = RestartPolicy(max_seconds=5.0)  # live clients wait at most this for a retry
HUB_BATCH = SUBSCRIBE_BATCH  # events read per step while clients are registered

# hive's default `types` list (contract §5.5): 33 types.
DEFAULT_TYPES = frozenset(
    {
        "client_output_delta",
        "client_input_requested",
        "client_input_received",
        "llm_text_delta",
        "llm_turn_complete",
        "tool_call_started",
        "tool_call_completed",
        "execution_started",
        "execution_completed",
        "execution_failed",
        "execution_paused",
        "node_loop_started",
        "node_loop_iteration",
        "node_loop_completed",
        "node_action_plan",
        "node_internal_output",
        "goal_progress",
        "node_stalled",
        "node_retry",
        "node_tool_doom_loop",
        "context_compacted",
        "context_usage_updated",
        "worker_colony_loaded",
        "colony_created",
        "credentials_required",
        "subagent_report",
        "queen_phase_changed",
        "trigger_available",
        "trigger_activated",
        "trigger_deactivated",
        "trigger_fired",
        "trigger_removed",
        "trigger_updated",
        # hive 54fd8db's additions to the default list (RE:22-89)
        "session_snapshot",
        "loop_state_changed",
        "client_input_committed",
        "task_created",
        "task_updated",
        "task_completed",
        "session_forked",
    }
)
# What hive replays from its ring to a client that connects without a cursor.
REPLAY_TYPES = frozenset(
    {
        "client_output_delta",
        "execution_started",
        "client_input_requested",
        "client_input_received",
        "trigger_available",
        "trigger_activated",
        "trigger_deactivated",
        "trigger_fired",
        "trigger_removed",
        "trigger_updated",
    }
)


@dataclass(eq=False)
class Client:
    """One SSE connection: what it wants, and its bounded queue of live events."""

    session_id: str | None  # None: the global stream
    types: frozenset[str] | None  # None: every type
    queue: asyncio.Queue[RecordedEvent]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: RecordedEvent) -> bool:
        return self.types is None or event.type in self.types

    def offer(self, event: RecordedEvent) -> None:
        if not self.wants(event) or self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()


class Hub:
    """One store subscription, fanned out to the clients registered for each stream."""

    def __init__(
        self,
        store: EventStore,
        *,
        keepalive: float,
        queue_size: int,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.store = store
        self.supervisor = supervisor or Supervisor()
        self.keepalive = keepalive
        self.queue_size = queue_size
        self.position = 0  # the last position dispatched to clients
        self.closing = asyncio.Event()
        self._clients: dict[str | None, set[Client]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def client_count(self) -> int:
        return sum(len(c) for c in self._clients.values())

    async def start(self) -> None:
        self.position = await self.store.head_position()
        self._task = self.supervisor.spawn("sse_hub", self._run, policy=HUB_RESTARTS)

    async def stop(self) -> None:
        self.closing.set()
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        """Follow the log. A failed read raises to the supervisor, which logs it and
        restarts this from the last dispatched position (clients see a pause, never a gap).

        With no client registered nothing is read: the position moves to the head the
        doorbell announces (or, after a commit it could not place or a poll, to the
        head read from the store), so the log is not read back after every commit for
        nobody. Moving it is safe then: a client registering later takes the hub's
        position as its handover and reads everything up to it from the log itself."""
        bell = self.store.doorbell
        while True:
            ticket, unplaced = bell.ticket(), bell.unplaced
            if self._clients:
                page = await self.store.read_all(after_position=self.position, limit=HUB_BATCH)
                for event in page:
                    self.dispatch(event)
                if not page:
                    await wait_for_ticket(ticket, self.store.poll_seconds)
                continue
            await wait_for_ticket(ticket, self.store.poll_seconds)
            if self._clients:
                continue  # read from the position the new client took as its handover
            if ticket.is_set() and bell.unplaced == unplaced:
                self.position = max(self.position, bell.head)
            else:  # a poll (another process may have written), or an unplaced commit
                head = await self.store.head_position()
                if not self._clients:
                    self.position = max(self.position, head)

    def dispatch(self, event: RecordedEvent) -> None:
        self.position = event.position
        for client in self._clients.get(event.stream_id, ()):
            client.offer(event)
        if is_session_stream(event.stream_id):
            for client in self._clients.get(None, ()):
                client.offer(event)

    def register(self, client: Client) -> int:
        """Start queueing live events for `client`; every event after the returned
        position will reach its queue."""
        self._clients.setdefault(client.session_id, set()).add(client)
        return self.position

    def unregister(self, client: Client) -> None:
        clients = self._clients.get(client.session_id)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self._clients[client.session_id]


def frame(event: RecordedEvent, *, global_stream: bool) -> bytes:
    """`id: <position>` and hive's `data: <json>` (the global stream adds session_id)."""
    body = event_json(event, session_id=event.stream_id if global_stream else None)
    return b"id: %d\ndata: %s\n\n" % (event.position, body)


def parse_types_param(text: str | None) -> frozenset[str] | None:
    """hive's default list when absent or blank; `*` for every type."""
    types = parse_types(text)
    if not types:
        return DEFAULT_TYPES
    if "*" in types:
        return None
    return frozenset(types)


class EventStream(Response):
    """The response for one client: catch-up, hand-over to the hub, live."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        client: Client,
        cursor: int | None,
        opening: tuple[list[bytes], list[bytes]] = ([], []),
    ) -> None:
        self.status_code = 200
        self.background = None
        self.hub = hub
        self.client = client
        self.cursor = cursor
        # hive 54fd8db's connect frames, sent only without a cursor: the snapshot
        # before the replay, the trigger set after it (never stored: no `id:` line)
        self.opening = opening

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        writer = asyncio.create_task(self._write(send))
        gone = asyncio.create_task(_wait_disconnect(receive))
        overflow = asyncio.create_task(self.client.overflowed.wait())
        closing = asyncio.create_task(self.hub.closing.wait())
        waiters = {writer, gone, overflow, closing}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hub.unregister(self.client)
            await stop_tasks(waiters)  # re-cancels: a swallowed cancel cannot hang the response
        failure = writer.exception() if writer.done() and not writer.cancelled() else None
        if failure is not None:
            raise failure
        if not gone.done() or gone.cancelled():
            # Overflow or shutdown: end the response; a stuck reader gets a hard close.
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(1.0):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write(self, send: Send) -> None:
        """Ends quietly when the session is deleted under it."""
        with contextlib.suppress(StreamDeleted):
            await self._write_events(send)

    async def _write_events(self, send: Send) -> None:
        client = self.client
        global_stream = client.session_id is None

        async def emit(event: RecordedEvent) -> None:
            await send(
                {
                    "type": "http.response.body",
                    "body": frame(event, global_stream=global_stream),
                    "more_body": True,
                }
            )

        async def emit_raw(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        cursor = self.cursor
        if cursor is None:
            before, after = self.opening
            for body in before:
                await emit_raw(body)
            cursor = await self._replay(emit)
            for body in after:
                await emit_raw(body)
        # Catch up from the log until (nearly) at the head, then join the hub and
        # read the last stretch up to where the hub took over: no gap, no repeat.
        while True:
            cursor, full = await self._catch_up(cursor, None, emit)
            if not full:
                break
        handover = self.hub.register(client)
        while cursor < handover:
            cursor, full = await self._catch_up(cursor, handover, emit)
            if not full:
                break
        cursor = max(cursor, handover)
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
                # cancellation that races with a ready item, and the writer would
                # outlive its client.
                async with asyncio.timeout(self.hub.keepalive):
                    event = await client.queue.get()
            except TimeoutError:
                if await self._erased():
                    return
                await send(
                    {"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True}
                )
                continue
            if event.position > cursor:
                cursor = event.position
                await emit(event)

    async def _erased(self) -> bool:
        """Whether the session was erased while its stream is live: no event of it will
        ever come again, so the response ends (the hub dispatches nothing of an erase to
        the session's clients). Checked when the stream is idle, before each keepalive:
        one point read per idle period."""
        session_id = self.client.session_id
        if session_id is None:
            return False
        info = await self.hub.store.stream_info(session_id)
        return info is not None and info.deleted

    async def _catch_up(
        self, cursor: int, upto: int | None, emit: Callable[[RecordedEvent], Any]
    ) -> tuple[int, bool]:
        """Send one batch after `cursor` (up to `upto` inclusive); (new cursor, batch was full)."""
        store = self.hub.store
        client = self.client
        types = sorted(client.types) if client.types is not None else None
        if client.session_id is not None:
            batch = await store.read_positions(
                client.session_id,
                after_position=cursor,
                before_position=None if upto is None else upto + 1,
                limit=CATCH_UP_BATCH,
                types=types,
            )
        else:
            batch = await store.read_all(after_position=cursor, limit=CATCH_UP_BATCH, types=types)
        for event in batch:
            if upto is not None and event.position > upto:
                return upto, False
            cursor = event.position
            if client.session_id is not None or is_session_stream(event.stream_id):
                await emit(event)
        return cursor, len(batch) == CATCH_UP_BATCH

    async def _replay(self, emit: Callable[[RecordedEvent], Any]) -> int:
        """No cursor: hive's replay (recent events of a few types), then live from the head.

        The head is read first and returned as the cursor: an event committed after it
        (the tail may already hold some) is live, so the catch-up sends it whatever its
        type; moving the cursor to the tail's end would drop those of other types."""
        store = self.hub.store
        head = await store.head_position()
        session_id = self.client.session_id
        if session_id is None:
            return head
        page = await store.tail(session_id, REPLAY_WINDOW)
        for event in page.events:
            if event.position > head:
                break  # committed after the head was read: live, sent by the catch-up
            if event.type in REPLAY_TYPES and self.client.wants(event):
                await emit(event)
        return head


SSE_BODY = Annotated[
    str,
    Meta(
        description="`id: <position>` and `data: <HistoryEvent JSON>` messages, "
        "`: keepalive` comments"
    ),
]
SSE_QUERY: dict[str, Any] = {"types": shapes.StreamTypes, "after": shapes.Position}
SSE_HEADERS: dict[str, Any] = {"Last-Event-ID": shapes.Position}


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _cursor(request: Request) -> tuple[str, int | None]:
    """(its name, the cursor): Last-Event-ID wins over ?after= (a browser's reconnect
    keeps the original URL)."""
    header = request.headers.get("last-event-id")
    if header is not None and header.strip():
        return "Last-Event-ID", parse_position("Last-Event-ID", header.strip())
    return "after", parse_position("after", request.query_params.get("after"))


async def _open(request: Request, session_id: str | None) -> Response:
    hub = parts(request).hub
    try:
        name, cursor = _cursor(request)
    except QueryError as exc:
        return error(400, str(exc))
    if cursor is not None:
        # A position never handed out (another log, one restored from an older backup):
        # the stream would skip every event up to it, silently. Committed positions are
        # visible to every node's store, so a real one is never past the head.
        head = await hub.store.head_position()
        if cursor > head:
            return error(400, f"{name} {cursor} is past the newest position of the log ({head})")
    if session_id is not None and await session_stream_info(request, session_id) is None:
        return error(404, f"Session '{session_id}' not found")
    if cursor is not None and await hub.store.archived_after(cursor, session_id):
        # The events after the cursor are no longer all in the live log: resuming would
        # skip the archived ones without a sign ("every later event exactly once").
        return error(
            410,
            f"events after {name} {cursor} were archived (hivelog archive): resuming here "
            "would skip them; read the history (archived_before) or the archive",
        )
    types = parse_types_param(request.query_params.get("types"))
    client = Client(session_id, types, asyncio.Queue(hub.queue_size))
    opening: tuple[list[bytes], list[bytes]] = ([], [])
    if session_id is not None and cursor is None:
        state = parts(request).sessions.get(session_id)
        if state is not None:
            now_ms = parts(request).clock.now_ms()
            opening = opening_frames(state, types, time.time(), now_ms)
    return EventStream(hub, client, cursor, opening)


def _synthetic(
    type_: str, data: dict[str, Any], state: SessionState, now: float, seq: int
) -> bytes:
    body = envelope(
        type_,
        data,
        timestamp=now,
        node_id="queen" if type_ == "session_snapshot" else None,
        colony_id=state.colony.colony_id if state.colony else None,
    )
    body["seq"] = seq
    return b"data: " + orjson.dumps(body) + b"\n\n"


def opening_frames(
    state: SessionState, types: frozenset[str] | None, now: float, now_ms: int
) -> tuple[list[bytes], list[bytes]]:
    """hive 54fd8db's connect (RE:365-414): `session_snapshot` (seq 0), and after the
    replay the whole trigger set as `trigger_activated` (running) or
    `trigger_available`, with the schedule merged into `trigger_config`."""
    before: list[bytes] = []
    if types is None or "session_snapshot" in types:
        before.append(_synthetic("session_snapshot", snapshot_dict(state, now), state, now, 0))
    after: list[bytes] = []
    for trigger in state.triggers.values():
        running = trigger.active and state.live
        type_ = "trigger_activated" if running else "trigger_available"
        if types is not None and type_ not in types:
            continue
        config = stats_config(trigger, now_ms) if running else dict(trigger.trigger_config)
        data = {
            "trigger_id": trigger.id,
            "trigger_type": trigger.trigger_type,
            "trigger_config": config,
            "name": trigger.description or trigger.id,
            "task": trigger.task,
        }
        after.append(_synthetic(type_, data, state, now, state.version))
    return before, after


@documented(
    "Live events of one session (SSE), resumable",
    response=SSE_BODY,
    media_type="text/event-stream",
    query=SSE_QUERY,
    headers=SSE_HEADERS,
    errors=(400, 404),
)
async def session_events(request: Request) -> Response:
    return await _open(request, request.path_params["session_id"])


@documented(
    "Live events of every session (SSE), resumable",
    response=SSE_BODY,
    media_type="text/event-stream",
    query=SSE_QUERY,
    headers=SSE_HEADERS,
    errors=(400,),
)
async def all_events(request: Request) -> Response:
    return await _open(request, None)


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name)
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default


def hub_from_env(store: EventStore, supervisor: Supervisor | None = None) -> Hub:
    """The hub, tuned by HIVELOG_SSE_KEEPALIVE (seconds, default 15) and
    HIVELOG_SSE_QUEUE (events per client, default 1000)."""
    return Hub(
        store,
        keepalive=_env_float("HIVELOG_SSE_KEEPALIVE", KEEPALIVE_SECONDS),
        # at least 1: asyncio.Queue(0) is unbounded, and 0.5 passes the > 0 check
        queue_size=max(1, int(_env_float("HIVELOG_SSE_QUEUE", QUEUE_SIZE))),
        supervisor=supervisor,
    )


def chain_exit_signals(hub: Hub) -> Callable[[], None]:
    """uvicorn waits for open responses before shutting down, and an event stream never
    ends by itself: on an exit signal, close the streams, then let uvicorn's handler run."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(sig: int, frame_: FrameType | None) -> None:
        loop.call_soon_threadsafe(hub.closing.set)
        prev = previous.get(sig)
        if callable(prev):
            prev(sig, frame_)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: nothing to chain
            previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, prev in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, prev)

    return restore


routes = [
    Route("/api/sessions/{session_id}/events", session_events, methods=["GET"]),
    Route("/api/events", all_events, methods=["GET"]),
]
