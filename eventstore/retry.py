"""Deciding whether an append whose event ids are already stored is a retry.

KurrentDB semantics: if every id of the batch is already in this stream, in the
same order, at versions the append's expectation allows, the append already
happened and its original result is returned. Any other reuse of an id is an
error, so a client cannot silently write the same event to two places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .types import AppendResult, DuplicateEventId, Expected, ExpectedState


def resolve_retry(
    stream_id: str,
    event_ids: Sequence[str],
    expected: Expected,
    found: Mapping[str, tuple[str, int, int]],
) -> AppendResult | None:
    """`found` maps stored ids to (stream_id, version, position).

    Returns the original AppendResult for a true retry, None when no id is stored
    (the caller reports its own conflict), and raises DuplicateEventId otherwise.
    """
    if not found:
        return None
    for event_id in event_ids:
        place = found.get(event_id)
        if place is None:
            raise DuplicateEventId(
                stream_id,
                next(iter(found)),
                "some ids of this batch are stored and others are not",
            )
        if place[0] != stream_id:
            raise DuplicateEventId(
                stream_id, event_id, f"it is already stored in stream {place[0]!r}"
            )
    versions = [found[event_id][1] for event_id in event_ids]
    first = versions[0]
    if versions != list(range(first, first + len(versions))):
        raise DuplicateEventId(
            stream_id, event_ids[0], "the ids are stored, but not as one batch in this order"
        )
    if isinstance(expected, int) and not isinstance(expected, bool):
        if first != expected + 1:
            raise DuplicateEventId(
                stream_id,
                event_ids[0],
                f"it is stored at version {first}, not after expected version {expected}",
            )
    elif expected is ExpectedState.NO_STREAM and first != 1:
        raise DuplicateEventId(
            stream_id, event_ids[0], f"it is stored at version {first}, not at the stream start"
        )
    last_position = found[event_ids[-1]][2]
    return AppendResult(stream_id, first, versions[-1], last_position, written=False)
