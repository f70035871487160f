"""The catalogue fold of `hivelog audit`, run in a second process beside the audit's pass.

The fold from scratch (the service's own `projections.catalogue`) costs more than
every other check together, and it needs nothing from them: so on a big log a child
process folds while the parent verifies the chain and the rows, and gives back the
rebuilt state in its checkpoint form. A stream's consecutive events are folded as one
run (`catalogue.apply_run`: one state copy per run, not per event), which gives the
same catalogue as `apply` one event at a time (a property test checks this).

Where the child gets its rows:
  - SQLite: it reads the file itself (read-only, only the columns the fold needs), so
    the parent neither pickles nor pipes ~0.5 KB a row. Its read transaction may be a
    newer snapshot than the parent's on a live log; positions up to the checkpoint's
    are only ever removed (an erase, an archive), never added or changed by the store,
    so the child also answers how many rows it saw up to there and the last one's
    (position, event id, chain link). The parent compares that with its own pass and,
    should they differ, folds its own snapshot in-process instead: the comparison is
    always against the parent's snapshot. Folding, it also checks the data of every
    session event (the fold parses it anyway; tools/audit_checked_fold.py) and counts
    those the audit's payload check would fault, so the parent's pass skips that parse
    (see `ForkedCatalogueCheck`). The parent folds and checks PARENT_SHARE of the
    sessions itself, in its pass, so the two processes end about together; the child
    takes the rest and tells where it inserted each session, for the merge.
  - PostgreSQL: the parent feeds it the rows it reads on stdin, in frames
    (tools/frames.py): each a pickled list of rows (the audit's first eight columns);
    an empty frame ends the input.
The child answers on stdout with one pickle `(state in the checkpoint's encoding, number
of sessions, (rows seen, last row's identity), session events whose data is unsound,
{session: position where it was inserted})`.
"""

from __future__ import annotations

import gc
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby, islice
from operator import itemgetter
from typing import IO, Any

from eventstore import RecordedEvent
from projections import catalogue as cat
from projections.ids import is_session_stream

from .audit_checked_fold import CheckedFold, CheckedRow, merged, share
from .audit_checks import EventRow, Report
from .audit_projections import CatalogueCheck, catalogue_folds, recorded
from .audit_source import LogSource
from .frames import END, frame, read_frame

FORK_MIN_EVENTS = 100_000  # below this a second interpreter costs more than it saves
# Sessions (of 100 shares, `share`) the parent folds itself when the child reads the file,
# so both processes end together: the parent's pass is the lighter one otherwise.
PARENT_SHARE = 20
RUN_MAX = 1_000  # events folded as one run at most (bounds the child's memory)
FETCH = 5_000
Identity = tuple[int, tuple[Any, ...] | None]  # rows up to the checkpoint, the last one's ids
# state (checkpoint encoding), sessions, identity, unsound events, sessions' insert positions
Answer = tuple[bytes, int, Identity, int, dict[str, int]]


class ForkedCatalogueCheck(CatalogueCheck):
    """`CatalogueCheck` whose fold runs in a child process (when the checkpoint is far
    enough into the log to be worth it); the same comparison, the same faults.

    A child that reads the SQLite file itself also checks the data of every session
    event up to the checkpoint (it parses it for the fold anyway), so the pass does not
    parse it a second time (`LogChecker.data_checked_to`). When the child finds one it
    would fault, read another snapshot or failed, `recheck` asks the audit to pass over
    the log once more with every check in the parent (the fold is not redone: its state
    is kept), so every fault is found, worded and ordered as before."""

    def __init__(self, report: Report, min_events: int | None = None) -> None:
        super().__init__(report)
        self.min_events = FORK_MIN_EVENTS if min_events is None else min_events
        self.child: subprocess.Popen[bytes] | None = None
        self.reads_itself = False  # the child reads the SQLite file (else: fed on stdin)
        self.seen = 0  # rows up to the checkpoint in the parent's pass
        self.last: tuple[Any, ...] | None = None  # the last one's identity
        self.answer: tuple[bytes, int] | None = None  # the child's, once checked
        self.data_checked_to = -1  # session events' data up to here: the folds check it
        self.recheck = False  # the pass must be done again with every check here
        self.cut = 0  # sessions of shares below it are folded here (`mine`), the rest there
        self.mine = CheckedFold()
        self._mine: dict[str, bool] = {}
        self._child_inserted: dict[str, int] = {}  # the child's sessions' insert positions

    async def start(self, source: LogSource) -> None:
        self.data_checked_to, self.recheck = -1, False
        if self.answer is not None:  # the pass done again: the fold is already known
            return
        await super().start(source)
        if self.stored is not None and self.stop_at >= self.min_events:
            uri = getattr(source, "uri", None)
            self.reads_itself = isinstance(uri, str)
            self.cut = PARENT_SHARE if self.reads_itself else 0
            self.mine = CheckedFold(self._folds_here)
            # spawned before the stored state is decoded, so the child starts at once
            self.child = self._spawn(uri if isinstance(uri, str) else None)
            if not self.readable():  # nothing to compare: no fold
                self.close()
                self.reads_itself = False
            elif self.reads_itself:
                self.data_checked_to = self.stop_at

    def _folds_here(self, stream_id: str) -> bool:
        return share(stream_id) < self.cut

    def _spawn(self, uri: str | None = None) -> subprocess.Popen[bytes]:
        # started once, at the start of the pass; writes to it block only while it folds
        command = [sys.executable, "-m", "tools.audit_fold", str(self.stop_at)]
        return subprocess.Popen(
            [*command, uri, str(self.cut)] if uri else command,
            stdin=subprocess.DEVNULL if uri else subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def event(self, row: EventRow) -> None:
        if self.answer is not None:
            return
        if self.child is None:
            super().event(row)
        else:
            self.rows([row])

    def rows(self, rows: Sequence[EventRow], order: int = 2) -> None:
        if self.answer is not None:
            return
        child = self.child
        if child is None:
            super().rows(rows, order)
            return
        stop_at = self.stop_at
        if self.reads_itself:  # fold this process's share; note which rows the child saw
            if not rows or rows[0][0] > stop_at:
                return
            if rows[-1][0] > stop_at:
                rows = [row for row in rows if row[0] <= stop_at]
            self.seen += len(rows)
            last = rows[-1]
            self.last = _identity(last[0], last[3], last[9])
            if self.cut:
                self.mine.feed(self._my_rows(rows))
            return
        batch = []
        for row in rows:
            if row[0] > stop_at:
                break
            if catalogue_folds(row[1]):
                batch.append(row[:8])
        if batch:
            assert child.stdin is not None
            child.stdin.write(frame(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)))

    def _my_rows(self, rows: Sequence[EventRow]) -> list[CheckedRow]:
        """This process's share of the rows (and `$sessions`), as the checked fold takes
        them."""
        mine = self._mine
        picked = []
        for row in rows:
            stream_id = row[1]
            take = mine.get(stream_id)
            if take is None:
                take = mine[stream_id] = stream_id == cat.SESSIONS_STREAM or (
                    is_session_stream(stream_id) and self._folds_here(stream_id)
                )
            if take:
                picked.append((stream_id, row[2], row[0], row[4], row[5], row[7]))
        return picked

    async def finish(self, source: LogSource, report: Report) -> None:
        if self.child is not None and self.reads_itself:
            try:
                value, count, identity, unsound = self._answer()
                if identity == (self.seen, self.last):
                    self.answer = self._merged(value, count)
            except RuntimeError:  # it failed (said why on stderr): fold here instead
                identity, unsound = (-1, None), 0
            unsound += self.mine.unsound
            if self.answer is None:  # another snapshot, or it failed: fold the parent's
                await self._fold_here(source)
                self.answer = super().rebuilt()
                unsound = 1  # and check its data here, too
            if unsound and self.data_checked_to >= 0:
                self.recheck = True  # faults to word and order: the pass again, here
                return
        await super().finish(source, report)

    def _merged(self, theirs: bytes, count: int) -> tuple[bytes, int]:
        """The child's state and this process's share as one (the child's alone if this
        process folded none); its encoding and its number of sessions."""
        if not self.cut:
            return theirs, count
        with_position = cat.decode_state(theirs)
        if with_position is None:
            raise RuntimeError("the catalogue fold process answered an unreadable state")
        inserted = self._child_inserted
        state = merged(self.mine, (with_position, inserted))
        state.position = self.stop_at
        return cat.encode(state), len(state.sessions)

    async def _fold_here(self, source: LogSource) -> None:
        state, stop_at = self.state, self.stop_at
        async for rows in source.events():
            for row in rows:
                if row[0] > stop_at:
                    return
                if catalogue_folds(row[1]):
                    cat.apply(state, recorded(row))

    def rebuilt(self) -> tuple[bytes, int]:
        if self.answer is not None:
            return self.answer
        if self.child is None:
            return super().rebuilt()
        value, count, _, _ = self._answer()
        return value, count

    def _answer(self) -> tuple[bytes, int, Identity, int]:
        child, self.child = self.child, None
        assert child is not None and child.stdout is not None
        try:
            if child.stdin is not None:
                child.stdin.write(END)
                child.stdin.close()
            answer = child.stdout.read()
        finally:
            code = child.wait()
        if code != 0 or not answer:
            raise RuntimeError(f"the catalogue fold process failed (exit {code})")
        value, count, identity, unsound, self._child_inserted = pickle.loads(answer)
        return value, count, identity, unsound

    def close(self) -> None:
        """Stop the child if the audit ended early (a read failed)."""
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            self.child = None


def _identity(position: int, event_id: str, chain: bytes | None) -> tuple[Any, ...]:
    """What tells two reads of a row apart: position, event id, chain link (as stored:
    both reads are of the same SQLite file, through the same driver)."""
    return position, event_id, chain


def fold_rows(rows: Iterable[Sequence[Any]]) -> cat.CatalogueState:
    """The catalogue folded from rows in position order (the audit's first eight columns;
    only rows of streams the catalogue folds matter)."""
    return fold_events(map(recorded, rows))


def fold_events(events: Iterable[RecordedEvent]) -> cat.CatalogueState:
    """The catalogue folded from events in position order, a stream's consecutive events
    as one run (`catalogue.apply_run`); events of streams it does not fold are skipped
    (they only move its position, which the caller sets to the checkpoint's)."""
    state = cat.CatalogueState()
    apply_run = cat.apply_run
    for stream_id, group in groupby(events, key=_stream_id):
        if catalogue_folds(stream_id):
            while run := list(islice(group, RUN_MAX)):
                apply_run(state, run)
    return state


_stream_id = itemgetter(0)  # RecordedEvent.stream_id


def _frames(stream: IO[bytes]) -> Iterator[Sequence[Any]]:
    while (payload := read_frame(stream)) is not None:
        yield from pickle.loads(payload)


def fold_frames(stream: IO[bytes], stop_at: int) -> Answer:
    """The child's work when fed: fold every row of every frame, then the state as JSON
    (the parent checks these rows' data itself)."""
    state = fold_rows(_frames(stream))
    state.position = stop_at
    return cat.encode(state), len(state.sessions), (0, None), 0, {}


def fold_file(uri: str, stop_at: int, cut: int = 0) -> Answer:
    """The child's work on SQLite: read the file (read-only) up to `stop_at`, fold it and
    check every session event's data (`fold_checked`). Only the columns the fold reads;
    the rows are counted as they are read, and the last one's identity is asked for in
    the same snapshot."""
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=1")
        conn.execute("BEGIN")
        columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
        chain = "chain" if "chain" in columns else "NULL"
        last = conn.execute(
            f"SELECT position, event_id, {chain} FROM events WHERE position <= ? "
            "ORDER BY position DESC LIMIT 1",
            (stop_at,),
        ).fetchone()
        cursor = conn.execute(
            "SELECT stream_id, version, position, type, data, recorded_at "
            "FROM events WHERE position <= ? ORDER BY position",
            (stop_at,),
        )
        seen = [0]
        fold = CheckedFold(lambda stream_id: share(stream_id) >= cut)
        fold.feed(_fetched(cursor, seen))
    finally:
        conn.close()
    state = fold.state
    state.position = stop_at
    identity = seen[0], None if last is None else _identity(*last)
    return cat.encode(state), len(state.sessions), identity, fold.unsound, fold.inserted


def _fetched(cursor: sqlite3.Cursor, seen: list[int]) -> Iterator[CheckedRow]:
    """The cursor's rows, counted into `seen[0]` (a count(*) would read them twice)."""
    while rows := cursor.fetchmany(FETCH):
        seen[0] += len(rows)
        yield from rows


def main(argv: Sequence[str]) -> int:
    # A one-shot process whose fold keeps nearly everything it allocates (the catalogue)
    # and makes no cycles worth collecting: the cyclic collector would only rescan the
    # growing state (~5-10 % of the fold, measured); the memory goes back at exit.
    gc.disable()
    stop_at = int(argv[0])
    if len(argv) > 1:
        result = fold_file(argv[1], stop_at, int(argv[2]) if len(argv) > 2 else 0)
    else:
        result = fold_frames(sys.stdin.buffer, stop_at)
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
