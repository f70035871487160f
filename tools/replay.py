"""`hivelog replay`: a session's events for people or scripts, or a projection rebuild.

`replay SESSION_ID` prints the stream oldest first (`--from POS` starts at that
global position, inclusive; `--types a,b` keeps only those types); `--follow`
then keeps printing new events as they are committed, from any process.
`replay --rebuild` folds the whole log from position 0 and compares the result
with the checkpointed projection state.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from eventstore import EventStore, RecordedEvent, StreamDeleted

from .console import EXIT_OK, EXIT_PROBLEMS, error, progress
from .logio import UsageError, connect, event_jsonl, resolve_url, run_tool, stream_pages
from .replay_format import human_line


def run(args: argparse.Namespace) -> int:
    return run_tool(_main(args))


async def _main(args: argparse.Namespace) -> int:
    if args.rebuild:
        if args.session_id or args.follow or args.types:
            raise UsageError("--rebuild takes no session, --types or --follow")
        from .rebuild import rebuild

        archives = [Path(a) for a in getattr(args, "archive", None) or ()]
        url = resolve_url(args.db, must_exist=True)
        return await rebuild(url, args.json, save=args.save, archives=archives)
    if not args.session_id:
        raise UsageError("replay needs a SESSION_ID (or --rebuild)")
    if args.save:
        raise UsageError("--save only goes with --rebuild")
    if args.from_position < 0:
        raise UsageError("--from must be >= 0")
    types = [t.strip() for t in args.types.split(",") if t.strip()] if args.types else None
    store = await connect(resolve_url(args.db, must_exist=True))
    try:
        return await _replay(store, args.session_id, args.from_position, types, args)
    finally:
        await store.close()


async def _replay(
    store: EventStore,
    session_id: str,
    from_position: int,
    types: list[str] | None,
    args: argparse.Namespace,
) -> int:
    info = await store.stream_info(session_id)
    if info is None and not args.follow:
        error(f"no session {session_id!r} in the log")
        return EXIT_PROBLEMS
    if info is not None and info.deleted:
        error(f"session {session_id!r} was deleted (its events are erased)")
        return EXIT_PROBLEMS
    printer = _printer(args.json)
    head = await store.head_position()
    after = max(from_position - 1, 0)
    try:
        with progress(f"replay {session_id}", None) as advance:
            async for page in stream_pages(
                store, session_id, after_position=after, before_position=head + 1, types=types
            ):
                for event in page:
                    printer(event)
                sys.stdout.flush()
                advance(len(page))
        if args.follow:
            async for event in store.subscribe(after_position=max(head, after), types=types):
                if event.stream_id == session_id:
                    printer(event)
                    sys.stdout.flush()
    except StreamDeleted:
        error(f"session {session_id!r} was deleted while reading")
        return EXIT_PROBLEMS
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): not an error
    return EXIT_OK


def _printer(as_json: bool) -> Callable[[RecordedEvent], None]:
    out = sys.stdout.buffer

    def print_json(event: RecordedEvent) -> None:
        out.write(event_jsonl(event))

    def print_human(event: RecordedEvent) -> None:
        out.write(human_line(event).encode() + b"\n")

    return print_json if as_json else print_human
