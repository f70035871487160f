"""GET /api/sessions/{id}/events/history: hive's tail read, plus position cursors.

hive 54fd8db's cursors are served too (RS:1912-2162, mapped onto versions as the
contract suggests): every page says `start_index` (the first event's version),
`start_offset` (= start_index - 1, the number of older events) and
`has_more_older`; `before_offset=k` asks for the newest `limit` events with
version <= k (`before_index` is accepted; the version already says it). Such a
page has `total` -1, as hive's. Each event's `seq` is its version. The default
limit is hive 54fd8db's 500 (3c390c9e's was 2000; the newer one wins).

Without cursors or a type filter this is hive's response, served from one store
read, `store.tail_array`: an index walk of `limit` rows that the database splices
into the JSON array itself (the stream row, with its archive cut, in the same
statement), so the cost is the same for a session of ten events or a million, no
Python object is made per event, and the stored envelope bytes go to the body
untouched (the splice of api/http/eventjson.py; pages it cannot take go that way).
`before=` / `after=` (global positions) and `types=` page through the rest; every
page says whether older or newer events exist and which cursor fetches them.
Unlike hive, an unknown (or deleted) session is a 404, not an empty 200.

Conditional GET (hive's frontend refetches history on every mount): every 200
carries a strong `ETag` from the stream head (version, position) and the
normalised query; `If-None-Match` with it gives a 304 with no body. The plain
tail still reads the store once; only a revalidation asks for the head row first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.http import shapes
from api.http.contract import documented
from api.http.eventjson import StoredEvent, events_array
from api.http.responses import JSONResponse, error
from api.http.state import parts
from eventstore import EventStore, StreamDeleted, StreamInfo
from projections.ids import is_valid_id

DEFAULT_LIMIT = 500  # hive 54fd8db (RS:2057); 3c390c9e had 2000
MAX_LIMIT = 10_000


class QueryError(Exception):
    """A malformed query parameter: 400 with its message."""


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    before: int | None
    after: int | None
    types: tuple[str, ...]
    before_offset: int | None = None  # hive 54fd8db's cursor: versions <= this

    @property
    def plain(self) -> bool:
        """hive's request: the newest `limit` events of every type."""
        return self.before is None and self.after is None and not self.types


def parse_limit(text: str | None) -> int:
    """hive's rule: default 500, `0` means the default, clamped to [1, 10000]; a
    non-integer means the default."""
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text) or DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT
    return min(max(value, 1), MAX_LIMIT)


def parse_loose_int(text: str | None) -> int | None:
    """hive's `before_offset` / `before_index`: a bad value counts as absent."""
    if text is None or len(text) > 19:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_position(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise QueryError(f"{name} must be a non-negative integer position")
    return int(text)


def parse_types(text: str | None) -> tuple[str, ...]:
    """`types=a,b`: comma-separated event types; blanks are ignored."""
    if not text:
        return ()
    return tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def parse_query(params: Any) -> HistoryQuery:
    return HistoryQuery(
        limit=parse_limit(params.get("limit")),
        before=parse_position("before", params.get("before")),
        after=parse_position("after", params.get("after")),
        types=parse_types(params.get("types")),
        before_offset=parse_loose_int(params.get("before_offset")),
    )


def etag(head_version: int, head_position: int, q: HistoryQuery, cut: int = 0) -> str:
    """A strong validator: the stream head (version, position), its archive cut and the
    normalised query.

    Stored events never change in place (an erase deletes the whole stream, which
    is then a 404; an archive moves the cut), so the same head, cut and query always
    give the same bytes; any append moves the head. Types are sorted: their order
    filters the same.
    """
    norm = f"{q.limit}|{q.before}|{q.after}|{','.join(sorted(q.types))}|{q.before_offset}"
    digest = hashlib.blake2b(norm.encode(), digest_size=6).hexdigest()
    return f'"h{head_version}.{head_position}.{cut}.{digest}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 If-None-Match: `*` or any listed tag, compared weakly (W/ ignored)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def not_modified(tag: str) -> Response:
    """304: no body, the validator still sent."""
    return Response(status_code=304, headers={"ETag": tag, "Cache-Control": "no-cache"})


def not_found(session_id: str) -> JSONResponse:
    return error(404, f"Session '{session_id}' not found")


async def session_stream_info(request: Request, session_id: str) -> StreamInfo | None:
    """The session's stream head, or None when the session never existed or was deleted.

    A session the sessions service knows but whose stream is still empty counts
    as existing (head 0), so a brand-new session is never a 404.
    """
    if not is_valid_id(session_id):
        return None
    the_parts = parts(request)
    info = await the_parts.store.stream_info(session_id)
    if info is not None:
        return None if info.deleted else info
    if the_parts.sessions.get(session_id) is not None:
        return StreamInfo(session_id, 0, 0, False, 0)
    return None


def render(rows: list[StoredEvent], fields: dict[str, Any], tag: str) -> Response:
    """`{"events":[...], **fields}` with the events spliced in as bytes."""
    tail = b"," + orjson.dumps(fields)[1:]
    body = events_array(rows, prefix=b'{"events":', suffix=tail)
    return Response(
        body, media_type="application/json", headers={"ETag": tag, "Cache-Control": "no-cache"}
    )


@documented(
    "The newest events (hive's shape), or a page by position cursor",
    response=shapes.HistoryPage,
    query={
        "limit": Annotated[
            str, Meta(description="1-10000, default 500, 0 or a non-integer: the default")
        ],
        "before": shapes.Position,
        "after": shapes.Position,
        "types": shapes.EventTypes,
    },
    errors=(400, 404),
)
async def events_history(request: Request) -> Response:
    session_id: str = request.path_params["session_id"]
    try:
        query = parse_query(request.query_params)
    except QueryError as exc:
        return error(400, str(exc))
    if not is_valid_id(session_id):
        return not_found(session_id)
    store = parts(request).store
    try:
        if query.before_offset is not None:
            return await _offset_page(request, store, session_id, query, query.before_offset)
        if query.plain:
            return await _tail(request, store, session_id, query)
        return await _window(request, store, session_id, query)
    except StreamDeleted:
        return not_found(session_id)


async def _tail(request: Request, store: EventStore, session_id: str, q: HistoryQuery) -> Response:
    """One store read: the page, spliced into one JSON array by the database, with the
    stream's head row (its archive cut) from the same statement (`store.tail_array`).

    A revalidation (`If-None-Match`) first asks for the head row alone, so an
    unchanged session costs a point read and no body. A page the database cannot
    splice (a stored payload that is not a plain one-line object) takes the per-event
    path, `_tail_rows`.
    """
    inm = request.headers.get("if-none-match")
    if inm:
        info = await session_stream_info(request, session_id)
        if info is None:
            return not_found(session_id)
        tag = etag(info.head_version, info.head_position, q, info.truncated_before)
        if matches(inm, tag):
            return not_modified(tag)
    page = await store.tail_array(session_id, q.limit)
    if not page.spliced:
        return await _tail_rows(request, store, session_id, q)
    info = page.info
    if page.count:
        head_position = page.last_position
    elif info is not None:
        head_position = info.head_position
    elif parts(request).sessions.get(session_id) is not None:
        head_position = 0  # a brand-new session: no events yet, not a 404
    else:
        return not_found(session_id)
    cut = info.truncated_before if info is not None else 0
    older = page.count > 0 and page.first_version > max(cut, 1)
    fields = _page_fields(
        session_id,
        q,
        count=page.count,
        first_version=page.first_version,
        first_position=page.first_position,
        total=page.total,
        older=older,
        next_=head_position,
    )
    tag = etag(page.total, head_position, q, cut)
    body = page.array(b'{"events":', b"," + orjson.dumps(_mark_cut(fields, older, cut))[1:])
    return Response(
        body, media_type="application/json", headers={"ETag": tag, "Cache-Control": "no-cache"}
    )


async def _tail_rows(
    request: Request, store: EventStore, session_id: str, q: HistoryQuery
) -> Response:
    """The tail from rows, each spliced in Python (`events_array`'s careful path)."""
    page = await store.tail_json(session_id, q.limit)
    rows: list[StoredEvent] = list(page.rows)
    if rows:
        head_position = rows[-1].position
    else:
        info = await session_stream_info(request, session_id)
        if info is None:
            return not_found(session_id)
        head_position = info.head_position
    older = bool(rows) and rows[0].version > 1
    cut = 0
    if older or not rows:  # the oldest live event may sit at an archive cut
        cut_info = await store.stream_info(session_id)
        cut = cut_info.truncated_before if cut_info is not None else 0
        older = older and rows[0].version > cut
    fields = _fields(session_id, q, rows, page.total, older=older, newer=False, next_=head_position)
    return render(rows, _mark_cut(fields, older, cut), etag(page.total, head_position, q, cut))


async def _offset_page(
    request: Request, store: EventStore, session_id: str, q: HistoryQuery, before_offset: int
) -> Response:
    """hive 54fd8db's older page: the newest `limit` events with version <= k."""
    info = await session_stream_info(request, session_id)
    if info is None:
        return not_found(session_id)
    tag = etag(info.head_version, info.head_position, q, info.truncated_before)
    if matches(request.headers.get("if-none-match"), tag):
        return not_modified(tag)
    rows: list[StoredEvent] = []
    if before_offset > 0:
        upper = min(before_offset, info.head_version)
        found = await store.read(session_id, after_version=upper + 1, limit=q.limit, backwards=True)
        rows = list(reversed(found))
    fields = _fields(session_id, q, rows, -1, older=False, newer=False, next_=info.head_position)
    fields["truncated"] = False
    fields["has_more_older"] = fields["start_offset"] >= max(info.truncated_before, 1)
    fields["has_more_newer"] = bool(rows) and rows[-1].version < info.head_version
    return render(rows, _mark_cut(fields, fields["has_more_older"], info.truncated_before), tag)


async def _window(
    request: Request, store: EventStore, session_id: str, q: HistoryQuery
) -> Response:
    info = await session_stream_info(request, session_id)
    if info is None:
        return not_found(session_id)
    tag = etag(info.head_version, info.head_position, q, info.truncated_before)
    if matches(request.headers.get("if-none-match"), tag):
        return not_modified(tag)
    types = list(q.types) or None
    newest_first = q.after is None  # a `before` page (or a filtered tail) walks back
    fetched: list[StoredEvent] = list(
        await store.read_positions(
            session_id,
            after_position=q.after,
            before_position=q.before,
            limit=q.limit + 1,
            newest_first=newest_first,
            types=types,
        )
    )
    more = len(fetched) > q.limit
    rows = fetched[: q.limit]
    if newest_first:
        rows.reverse()
    first = rows[0].position if rows else None
    last = rows[-1].position if rows else None
    if newest_first:
        older = more
        # an empty `before` page: anything at or after the cursor is newer (before=0 too)
        newer_than = (
            last if last is not None else (max(q.before - 1, 0) if q.before is not None else None)
        )
        newer = newer_than is not None and await _exists(store, session_id, types, after=newer_than)
    else:
        newer = more
        assert q.after is not None
        older_than = first if first is not None else q.after + 1
        older = await _exists(store, session_id, types, before=older_than)
    if last is not None:
        next_ = last
    elif q.after is not None:
        next_ = q.after
    elif q.before is not None:
        next_ = max(q.before - 1, 0)
    else:
        next_ = info.head_position
    fields = _fields(session_id, q, rows, info.head_version, older=older, newer=newer, next_=next_)
    return render(rows, _mark_cut(fields, older, info.truncated_before), tag)


async def _exists(
    store: EventStore,
    session_id: str,
    types: list[str] | None,
    *,
    before: int | None = None,
    after: int | None = None,
) -> bool:
    """Whether a (matching) event lies before / after a position: one index probe."""
    found = await store.read_positions(
        session_id,
        before_position=before,
        after_position=after,
        limit=1,
        newest_first=before is not None,
        types=types,
    )
    return bool(found)


def _mark_cut(fields: dict[str, Any], older: bool, cut: int) -> dict[str, Any]:
    """A page with nothing older left live, of a stream cut by `hivelog archive`, says
    where the archive ends (`archived_before`: its versions below it are archived)."""
    if cut > 0 and not older:
        fields["archived_before"] = cut
    return fields


def _fields(
    session_id: str,
    q: HistoryQuery,
    rows: list[StoredEvent],
    total: int,
    *,
    older: bool,
    newer: bool,
    next_: int,
) -> dict[str, Any]:
    """hive's keys in hive 54fd8db's order, then the cursor keys hive lacks."""
    prev: int | None = None
    if older:
        prev = rows[0].position if rows else (q.after + 1 if q.after else None)
    start_index = rows[0].version if rows else 1
    return {
        "session_id": session_id,
        "total": total,
        "returned": len(rows),
        "truncated": older,
        "limit": q.limit,
        "start_index": start_index,
        "start_offset": start_index - 1 if rows else 0,
        "has_more_older": older,
        "has_more_newer": newer,
        "prev": prev,
        "next": next_,
    }


def _page_fields(
    session_id: str,
    q: HistoryQuery,
    *,
    count: int,
    first_version: int,
    first_position: int,
    total: int,
    older: bool,
    next_: int,
) -> dict[str, Any]:
    """`_fields` of a plain tail page known by its first row and size (no rows at hand)."""
    start_index = first_version if count else 1
    return {
        "session_id": session_id,
        "total": total,
        "returned": count,
        "truncated": older,
        "limit": q.limit,
        "start_index": start_index,
        "start_offset": start_index - 1 if count else 0,
        "has_more_older": older,
        "has_more_newer": False,
        "prev": first_position if older else None,
        "next": next_,
    }


routes = [Route("/api/sessions/{session_id}/events/history", events_history, methods=["GET"])]
