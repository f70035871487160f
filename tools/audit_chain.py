"""The audit's hash-chain check: recompute every link and name where the chain breaks.

Fed the live events in position order (the audit's single pass) and, merged in
by position, the links erased events left behind. For each link it recomputes the
content digest (live events only: erased ones have no content left) and the link
hash from the previous *stored* link, so one edited row yields one fault at that
row, not a cascade. What differs is named: the content, the header fields, or the
link itself (a removed, inserted or reordered event before it).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple

from eventstore.chain import DOMAIN, GENESIS, content_digest, link
from eventstore.types import MAX_INT64

from .audit_checks import EventRow, Fault, Report, as_row
from .audit_source import LogSource

_U64 = struct.Struct(">q")
_U64X2 = struct.Struct(">qq")


def _lp(text: str) -> bytes:
    raw = text.encode()
    return _U64.pack(len(raw)) + raw


class LinkRow(NamedTuple):
    """One link of the chain without its content (what an erased event keeps)."""

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    recorded_at_us: int
    digest: bytes
    chain: bytes


class ChainCheck:
    """Verifies the chain from `start_after` (0: from the first event) to the head."""

    def __init__(self, report: Report, start_after: int = 0) -> None:
        self.report = report
        self.start_after = start_after
        self.prev_position = 0
        self.prev_stored = GENESIS
        self.prev_expected = GENESIS
        self.erased: list[LinkRow] = []
        self.next_erased = 0
        self.links = 0
        self.first_break: int | None = None
        self.enabled = True
        self._texts: dict[str, bytes] = {}  # stream id / type -> its length-prefixed UTF-8

    async def start(self, source: LogSource) -> None:
        why = await source.chain_missing()
        if why is not None:
            self.enabled = False
            self.report.skipped["chain"] = why
            return
        before = await source.link_before(self.start_after + 1)
        if before is not None:
            self.prev_position, self.prev_stored = before
            self.prev_expected = self.prev_stored
        self.erased = [LinkRow._make(r) for r in await source.erased_links(after=self.start_after)]

    def event(self, row: EventRow) -> None:
        if not self.enabled or row.position <= self.start_after:
            return
        self._erased_before(row.position)
        if row.digest is None or row.chain is None:
            self._fault(row.position, row.stream_id, "has no chain hash: written behind the store")
            return
        data = row.data.encode() if isinstance(row.data, str) else bytes(row.data)
        meta = row.metadata.encode() if isinstance(row.metadata, str) else row.metadata
        if content_digest(data, None if meta is None else bytes(meta)) != bytes(row.digest):
            self._fault(
                row.position,
                row.stream_id,
                "content changed: data or metadata differ from the digest chained at append",
            )
        self._link(
            LinkRow(
                row.position,
                row.stream_id,
                row.version,
                row.event_id,
                row.type,
                row.recorded_at_us,
                bytes(row.digest),
                bytes(row.chain),
            )
        )

    def rows(self, rows: Sequence[EventRow], order: int = 1) -> None:
        """`event` for each row of a chunk. A link that verifies (content digest and link
        hash as `eventstore.chain` defines them, computed inline: one SHA-256 call each,
        each input one bytes join, no per-row objects) only moves the chain on; any other
        row goes through `event`, which finds and words the fault exactly as it does row
        by row. A row may be a plain tuple in EventRow's column order."""
        if not self.enabled:
            return
        sha256, pack, pack2, report = hashlib.sha256, _U64.pack, _U64X2.pack, self.report
        join = b"".join
        texts = self._texts
        erased = self._next_erased()
        # rows up to `start_after` go through `event` (which skips them)
        floor = self.start_after
        prev, links, prev_position = self.prev_stored, self.links, self.prev_position
        for index, row in enumerate(rows):
            (
                position,
                stream_id,
                version,
                event_id,
                type_,
                data,
                meta,
                recorded_at,
                digest,
                chain,
            ) = row
            # (a row without a digest or link fails the comparisons: `event` words it)
            if floor < position <= erased:
                if type(data) is not bytes:
                    data = data.encode() if isinstance(data, str) else bytes(data)
                if meta is None:
                    content = join((pack(len(data)), data, b"\x00"))
                else:
                    if type(meta) is not bytes:
                        meta = meta.encode() if isinstance(meta, str) else bytes(meta)
                    content = join((pack(len(data)), data, b"\x01", pack(len(meta)), meta))
                if sha256(content).digest() == digest:
                    try:
                        sid = texts[stream_id]
                    except KeyError:
                        sid = texts[stream_id] = _lp(stream_id)
                    try:
                        kind = texts[type_]
                    except KeyError:
                        kind = texts[type_] = _lp(type_)
                    eid = event_id.encode()
                    expected = sha256(
                        join((
                            DOMAIN, prev, pack(position), sid, pack2(version, len(eid)),
                            eid, kind, pack(recorded_at), digest,
                        ))
                    ).digest()  # fmt: skip
                    if expected == chain:
                        prev = chain if type(chain) is bytes else bytes(chain)
                        links += 1
                        prev_position = position
                        continue
            self.prev_stored = self.prev_expected = prev
            self.links, self.prev_position = links, prev_position
            report.at(index, order)
            self.event(as_row(row))
            prev, links, prev_position = self.prev_stored, self.links, self.prev_position
            erased = self._next_erased()
        # a verified link leaves the stored and the recomputed hash equal
        self.prev_stored = self.prev_expected = prev
        self.links, self.prev_position = links, prev_position

    def _next_erased(self) -> int:
        """The position of the next erased link to merge in (beyond any: 2**63)."""
        if self.next_erased < len(self.erased):
            return self.erased[self.next_erased].position
        return 2**63

    def _erased_before(self, position: int) -> None:
        while self.next_erased < len(self.erased) and self.erased[self.next_erased].position < (
            position
        ):
            self._link(self.erased[self.next_erased])
            self.next_erased += 1

    def _link(self, row: LinkRow) -> None:
        self.links += 1
        header = (row.position, row.stream_id, row.version, row.event_id, row.type)
        expected = link(self.prev_stored, *header, row.recorded_at_us, row.digest)
        if expected != row.chain:
            if link(self.prev_expected, *header, row.recorded_at_us, row.digest) == row.chain:
                pass  # follows the previous link's true hash: that stored hash was edited
            elif row.position != self.prev_position + 1:
                self._fault(
                    row.position,
                    row.stream_id,
                    f"link does not follow the link at position {self.prev_position}: "
                    "events between them were removed or moved, or this header changed",
                )
            else:
                self._fault(
                    row.position,
                    row.stream_id,
                    "stored hash differs from the recomputed one: the header (position, "
                    "stream, version, event id, type or recorded time) or the hash was "
                    "changed, or events were reordered",
                )
        self.prev_position, self.prev_stored, self.prev_expected = row.position, row.chain, expected

    async def finish(self, source: LogSource, report: Report) -> None:
        if not self.enabled:
            return
        self._erased_before(MAX_INT64)  # every erased link left
        recorded = await source.recorded_chain_head()
        if recorded is not None and recorded != (self.prev_position, self.prev_stored):
            self._fault(
                self.prev_position,
                None,
                f"the log records its chain head at position {recorded[0]} "
                f"({recorded[1].hex()[:16]}…), but the last link is at position "
                f"{self.prev_position} ({self.prev_stored.hex()[:16]}…): events at the end "
                "were removed or added behind the store",
            )
        report.chain_head = {"position": self.prev_position, "hash": self.prev_stored.hex()}
        report.stats["chain_links"] = self.links
        if self.start_after:
            report.stats["chain_from"] = self.start_after + 1
        if self.first_break is not None:
            report.stats["chain_first_break"] = self.first_break

    def _fault(self, position: int, stream_id: str | None, message: str) -> None:
        if self.first_break is None:
            self.first_break = position
        self.report.add(Fault("chain", message, stream_id, position))
