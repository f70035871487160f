"""A tail page as one JSON array, built by the database in one read (`tail_array`).

What `GET …/events/history` serves: the newest `n` events of a stream, oldest first,
each the stored envelope object with `"position":P,"version":V,` spliced in front of
its first key and `,"seq":V` after its last (the splice `api/http/eventjson.py`
documents), plus the exact stream length and the stream's head row, all from one
statement (one snapshot). The database concatenates the stored bytes; Python never
sees a row: no per-row objects, one bytes object for 2000 events.

The database writes each row's splice as the *separator* in front of it
(`,"seq":V-1},{"position":P,"version":V,`): versions of a stream's live events are
gapless (an archive cut removes a prefix, an erase the whole stream), so the previous
row's `seq` is `V - 1`; the statement checks the page really is gapless and every
stored payload really is a one-line object (`{"…}`, no `"seq"` in it), else `body`
is None and the caller takes the careful per-event path (`tail_json` and
`api/http/eventjson.events_array`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .types import StreamDeleted, StreamInfo

SEQ_KEY = b'"seq"'
TAIL_CACHE_BYTES = 64 << 20  # about a hundred 2000-event pages


@dataclass(frozen=True, slots=True)
class TailArray:
    """`tail_json` for serving, as one JSON array, with its stream's head row.

    `info` is the stream's head row as read in the same statement (None when the
    stream never existed); `total` the exact number of events (the newest version).
    `first_version` / `first_position` / `last_position` are 0 when the page is empty.
    """

    stream_id: str
    count: int
    total: int
    first_version: int
    first_position: int
    last_position: int
    info: StreamInfo | None
    body: bytes | None  # the middle of the array (see `array`); None: not spliceable

    @property
    def spliced(self) -> bool:
        return self.body is not None

    def array(self, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
        """`prefix` + the JSON array of the page's events + `suffix`, in one allocation."""
        if self.body is None:
            raise ValueError("this page needs the per-event path (see TailArray.body)")
        if self.count == 0:
            return prefix + b"[]" + suffix
        head = b'[{"position":%d,"version":%d,' % (self.first_position, self.first_version)
        tail = b',"seq":%d}]' % (self.first_version + self.count - 1)
        return b"".join((prefix, head, self.body, tail, suffix))


@dataclass(frozen=True, slots=True)
class Cached:
    head: tuple[int, int, int]  # (head_version, head_position, truncated_before)
    page: TailArray


class TailCache:
    """The last served pages of hot streams, bounded in bytes, least recently used out.

    A page is a pure function of the stream's head (version, position) and archive cut
    and of `n`: stored events never change in place, every append moves the head, an
    archive moves the cut, an erase tombstones the stream. So the statement is given
    the cached head and skips the page walk when the head still matches: a hot
    session's repeat read is one point read, still one statement, still exact.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = TAIL_CACHE_BYTES if max_bytes is None else max_bytes
        self.size = 0
        self._pages: OrderedDict[tuple[str, int], Cached] = OrderedDict()

    def lookup(self, stream_id: str, n: int) -> Cached | None:
        """The cached page of (stream, n), if any: give its `head` to the statement and
        the same object to `finish` (another request may replace the entry meanwhile)."""
        return self._pages.get((stream_id, n))

    def finish(
        self, stream_id: str, n: int, row: Sequence[Any], cached: Cached | None
    ) -> TailArray:
        """The statement's row -> TailArray: the cached page when the head still matched
        (the statement then walked nothing), else the new page, remembered."""
        current = (row[7], row[8], row[11] or 0)
        if cached is not None and not row[9] and current == cached.head:
            if self._pages.get((stream_id, n)) is cached:
                self._pages.move_to_end((stream_id, n))
            return cached.page
        page = finish(stream_id, row)
        if page.info is not None and page.body is not None:
            self._remember((stream_id, n), Cached(current, page))
        return page

    def _remember(self, key: tuple[str, int], entry: Cached) -> None:
        cost = len(entry.page.body or b"")
        if not 0 < cost <= self.max_bytes // 4:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self.size -= len(old.page.body or b"")
        self._pages[key] = entry
        self.size += cost
        while self.size > self.max_bytes:
            _, evicted = self._pages.popitem(last=False)
            self.size -= len(evicted.page.body or b"")


NO_HEAD = (-1, -1, -1)  # matches no stream: the statement walks the page


def finish(stream_id: str, row: Sequence[Any]) -> TailArray:
    """The statement's one row -> TailArray (shared by the SQLite and PostgreSQL twins).

    Row: count, first version, first position, last version, last position, shaped
    (rows whose payload is a `{"…}` object), body (bytes or None), then the head row:
    head_version, head_position, deleted, erased_events, truncated_before (all None
    when the stream has no row). Raises StreamDeleted for a tombstoned stream, as
    `tail` does.
    """
    count, v0, p0, v1, p1, shaped, body, head, head_position, deleted, erased, cut = row
    info: StreamInfo | None = None
    if head is not None:
        info = StreamInfo(
            stream_id, int(head), int(head_position), bool(deleted), int(erased), int(cut or 0)
        )
        if info.deleted and not count:
            raise StreamDeleted(stream_id)
    n = int(count or 0)
    if n == 0:
        total = info.head_version if info is not None else 0
        return TailArray(stream_id, 0, total, 0, 0, 0, info, b"")
    first, last = int(v0), int(v1)
    data = bytes(body) if body is not None else None
    ok = (
        data is not None
        and shaped == n
        and last - first + 1 == n
        and data.count(SEQ_KEY) == n - 1  # only the separators' keys: no stored `"seq"`
        and b"\n" not in data
        and b"\r" not in data
    )
    return TailArray(stream_id, n, last, first, int(p0), int(p1), info, data if ok else None)


# ?1 stream, ?2 n, ?3-?5 the cached page's head (TailCache: when the stream's head row
# still matches, nothing is walked). The page is the versions above (newest - n), walked
# in index order (ascending) by a subquery SQLite does not flatten into the aggregate, so
# group_concat sees the rows oldest first. Blobs compare bytewise: `data >= '{"' and < '{#'` is
# "starts with {\"" without a copy.
SQLITE_TAIL_ARRAY = """
SELECT p.n, p.v0, p.p0, p.v1, p.p1, p.shaped, p.body,
       s.head_version, s.head_position, s.deleted, s.erased_events, s.truncated_before
FROM (
    SELECT count(*) AS n, min(version) AS v0, min(position) AS p0,
           max(version) AS v1, max(position) AS p1,
           sum(data >= x'7b22' AND data < x'7b23' AND substr(data, -1) = x'7d') AS shaped,
           CAST(group_concat(
               substr(data, 2, length(data) - 2),
               ',"seq":' || (version - 1) || '},{"position":' || position
                   || ',"version":' || version || ','
           ) AS BLOB) AS body
    FROM (
        SELECT position, version, data FROM events
        WHERE stream_id = ?1
          AND version > (SELECT max(version) FROM events WHERE stream_id = ?1) - ?2
          AND NOT EXISTS (
              SELECT 1 FROM streams WHERE stream_id = ?1 AND deleted = 0
              AND head_version = ?3 AND head_position = ?4 AND truncated_before = ?5
          )
        ORDER BY version
    )
) AS p
LEFT JOIN streams AS s ON s.stream_id = ?1
"""


# The same for PostgreSQL ({q}: the schema). $1 stream, $2 n, $3-$5 the cached page's
# head. The head row is stream_info's (a tombstone, else the newest event, else the
# archive cut of a stream archived whole), with the cut; `json` keeps the stored text
# verbatim, so `data::text` is the stored bytes.
PG_TAIL_ARRAY = """
WITH cut AS (
    SELECT truncated_before, cut_position FROM {q}.stream_cuts WHERE stream_id = $1
), info AS (
    SELECT head_version, head_position, true AS deleted, erased_events
    FROM {q}.tombstones WHERE stream_id = $1
    UNION ALL
    (SELECT version, position, false, 0 FROM {q}.events WHERE stream_id = $1
     ORDER BY version DESC LIMIT 1)
    UNION ALL
    SELECT truncated_before - 1, cut_position, false, 0 FROM cut
    LIMIT 1
), page AS (
    SELECT e.position, e.version, e.data::text AS d
    FROM {q}.events AS e, info
    WHERE e.stream_id = $1 AND NOT info.deleted
      AND e.version > info.head_version - $2
      AND NOT (info.head_version = $3 AND info.head_position = $4
               AND coalesce((SELECT truncated_before FROM cut), 0) = $5)
)
SELECT count(*), min(version), min(position), max(version), max(position),
       count(*) FILTER (WHERE left(d, 2) = '{{"' AND right(d, 1) = '}}'),
       convert_to(string_agg(
           substr(d, 2, length(d) - 2),
           ',"seq":' || (version - 1) || '}},{{"position":' || position
               || ',"version":' || version || ','
           ORDER BY version
       ), 'UTF8'),
       (SELECT head_version FROM info), (SELECT head_position FROM info),
       (SELECT deleted FROM info), (SELECT erased_events FROM info),
       coalesce((SELECT truncated_before FROM cut), 0)
FROM page
"""
