"""`hivelog replay --rebuild`: fold the log from position 0 and compare with checkpoints.

The fold is the service's own pure `projections.catalogue.apply`. The comparison
is made at the checkpoint's position (a checkpoint is the state *as of* it), then
the fold goes on to the head, so the report also says how far behind the
checkpoint is. `--save` writes the rebuilt state as the new checkpoint: for a
stopped service whose checkpoint is damaged (a running one saves its own).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from eventstore import EventStore, RecordedEvent
from projections import catalogue as cat

from .archive import read_archived, uncovered
from .audit_projections import recorded
from .audit_source import open_source
from .console import EXIT_OK, EXIT_PROBLEMS, progress, write_json
from .logio import UsageError, connect, log_pages
from .projection_compare import as_json, differences


async def rebuild(
    url: str, as_json_output: bool, *, save: bool, archives: Sequence[Path] = ()
) -> int:
    cuts = await _archive_cuts(url) if archives or save else {}
    archived = [recorded(row) for row in read_archived(archives, cuts)]
    store = await connect(url)
    try:
        if save:
            missing = uncovered(cuts, (event.stream_id for event in archived))
            if missing:  # the fold would lack their events: saving it breaks the service
                raise UsageError(
                    f"not saved: {len(missing)} streams are archived (e.g. {missing[0]}) and "
                    "the --archive folders given do not hold their events once each; give "
                    "every folder that holds them"
                )
        result = await rebuild_catalogue(store, save=save, archived=archived)
    finally:
        await store.close()
    if as_json_output:
        write_json(result)
    else:
        sys.stdout.write(render(result))
    return EXIT_OK if result["equal"] is not False else EXIT_PROBLEMS


async def _archive_cuts(url: str) -> dict[str, int]:
    """Streams cut by `hivelog archive` (stream -> truncated_before), read as the audit
    reads them: the archived events of these are folded where they were."""
    source = await open_source(url)
    try:
        return await source.archive_cuts()
    finally:
        await source.close()


async def rebuild_catalogue(
    store: EventStore, *, save: bool, archived: Sequence[RecordedEvent] = ()
) -> dict[str, Any]:
    name = cat.CHECKPOINT_NAME
    checkpoint = await store.load_checkpoint(name)
    stop_at = checkpoint.position if checkpoint else -1
    head = await store.head_position()
    state = cat.CatalogueState()
    at_checkpoint: dict[str, Any] | None = None
    events = 0
    with progress("rebuild", head) as advance:
        done = 0
        pending = list(archived)  # folded in position order among the live events
        async for page in log_pages(store):
            for event in _merged(pending, page):
                if at_checkpoint is None and event.position > stop_at >= 0:
                    at_checkpoint = _snapshot(state, stop_at)
                cat.apply(state, event)
                events += 1
            advance(page[-1].position - done)
            done = page[-1].position
    for event in pending:  # archived after the last live event (not normally)
        if at_checkpoint is None and event.position > stop_at >= 0:
            at_checkpoint = _snapshot(state, stop_at)
        cat.apply(state, event)
        events += 1
    if at_checkpoint is None and stop_at >= 0:
        at_checkpoint = _snapshot(state, stop_at)
    state.position = max(state.position, head)
    result: dict[str, Any] = {
        "projection": name,
        "events_folded": events,
        "head_position": head,
        "sessions": len(state.sessions),
        "live_sessions": len(state.live_ids()),
        "deleted_sessions": len(state.deleted),
        "checkpoint_position": checkpoint.position if checkpoint else None,
        "equal": None,
        "differences": [],
        "saved": False,
    }
    if checkpoint is not None and at_checkpoint is not None:
        if cat.decode_state(checkpoint.state) is None:
            result["equal"] = False
            result["differences"] = ["the checkpoint is unreadable or of another format"]
        else:
            found = differences(_loads(checkpoint.state), at_checkpoint)
            result["equal"] = not found
            result["differences"] = found
    if save:
        await store.save_checkpoint(name, state.position, cat.encode(state))
        result["saved"] = True
    return result


def _merged(pending: list[RecordedEvent], page: list[RecordedEvent]) -> list[RecordedEvent]:
    """`page` with the archived events that come before its last one, taken from `pending`."""
    if not pending or pending[0].position > page[-1].position:
        return page
    cut = 0
    while cut < len(pending) and pending[cut].position < page[-1].position:
        cut += 1
    taken, pending[:cut] = pending[:cut], []
    return sorted([*taken, *page], key=lambda e: e.position)


def _snapshot(state: cat.CatalogueState, position: int) -> dict[str, Any]:
    value = as_json(state)
    value["position"] = position
    return value


def _loads(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def render(result: dict[str, Any]) -> str:
    lines = [
        f"rebuilt {result['projection']} from position 0: {result['events_folded']} events, "
        f"{result['sessions']} sessions ({result['live_sessions']} live, "
        f"{result['deleted_sessions']} deleted), head {result['head_position']}"
    ]
    if result["checkpoint_position"] is None:
        lines.append("no checkpoint saved yet: nothing to compare")
    elif result["equal"]:
        lines.append(
            f"checkpoint at position {result['checkpoint_position']} equals the rebuild "
            f"({result['head_position'] - result['checkpoint_position']} events behind the head)"
        )
    else:
        lines.append(f"checkpoint at position {result['checkpoint_position']} DIFFERS:")
        lines.extend(f"  - {d}" for d in result["differences"])
    if result["saved"]:
        lines.append(f"saved the rebuilt state as the checkpoint at {result['head_position']}")
    return "\n".join(lines) + "\n"
