"""The catalogue fold of `hivelog audit`, run in a second process beside the audit's pass.

The fold from scratch (the service's own `projections.catalogue.apply`) costs more
than every other check together, and it needs nothing from them: so on a big log the
audit feeds the rows it reads (the same rows, from its one snapshot) to a child
process that folds them while the parent verifies the chain and the rows, and gets
back the rebuilt state in its checkpoint form. Frames on the child's stdin: a 4-byte
big-endian length, then a pickled list of rows (the audit's first eight columns); an
empty frame ends the input, and the child answers on stdout with one pickle
`(state as the checkpoint's JSON, number of sessions)`.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any

from eventstore import RecordedEvent
from projections import catalogue as cat

from .audit_checks import EventRow, Report
from .audit_projections import CatalogueCheck
from .audit_source import LogSource
from .projection_compare import as_json

FORK_MIN_EVENTS = 100_000  # below this a second interpreter costs more than it saves
_FRAME = struct.Struct(">I")


class ForkedCatalogueCheck(CatalogueCheck):
    """`CatalogueCheck` whose fold runs in a child process (when the checkpoint is far
    enough into the log to be worth it); the same comparison, the same faults."""

    def __init__(self, report: Report, min_events: int | None = None) -> None:
        super().__init__(report)
        self.min_events = FORK_MIN_EVENTS if min_events is None else min_events
        self.child: subprocess.Popen[bytes] | None = None

    async def start(self, source: LogSource) -> None:
        await super().start(source)
        if (
            self.stored is not None
            and self.stop_at >= self.min_events
            and cat.decode_state(self.stored) is not None  # else nothing is compared
        ):
            self.child = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # started once, at the start of the pass; writes to it block only while it folds
        return subprocess.Popen(
            [sys.executable, "-m", "tools.audit_fold", str(self.stop_at)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def event(self, row: EventRow) -> None:
        if self.child is None:
            super().event(row)
        else:
            self.rows([row])

    def rows(self, rows: Sequence[EventRow], order: int = 2) -> None:
        child = self.child
        if child is None:
            super().rows(rows, order)
            return
        stop_at = self.stop_at
        batch = []
        for row in rows:
            if row[0] > stop_at:
                break
            if self.folds(row[1]):
                batch.append(row[:8])
        if batch:
            frame = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            assert child.stdin is not None
            child.stdin.write(_FRAME.pack(len(frame)))
            child.stdin.write(frame)

    def rebuilt(self) -> tuple[dict[str, Any], int]:
        child = self.child
        if child is None:
            return super().rebuilt()
        self.child = None
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(_FRAME.pack(0))
            child.stdin.close()
            answer = child.stdout.read()
        finally:
            code = child.wait()
        if code != 0 or not answer:
            raise RuntimeError(f"the catalogue fold process failed (exit {code})")
        value, count = pickle.loads(answer)
        return value, count

    def close(self) -> None:
        """Stop the child if the audit ended early (a read failed)."""
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            self.child = None


def _read_frame(stream: IO[bytes]) -> bytes:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return b""
    (size,) = _FRAME.unpack(head)
    return stream.read(size) if size else b""


def fold_frames(stream: IO[bytes], stop_at: int) -> tuple[dict[str, Any], int]:
    """The child's work: fold every row of every frame, then the state as JSON."""
    state = cat.CatalogueState()
    apply = cat.apply
    while frame := _read_frame(stream):
        for position, stream_id, version, event_id, type_, data, meta, recorded_at in pickle.loads(
            frame
        ):
            # exactly `audit_projections.recorded`
            raw = data.encode() if isinstance(data, str) else bytes(data)
            extra = meta.encode() if isinstance(meta, str) else meta
            apply(
                state,
                RecordedEvent(
                    stream_id, version, position, event_id, type_, raw, extra, recorded_at
                ),
            )
    state.position = stop_at
    return as_json(state), len(state.sessions)


def main(argv: Sequence[str]) -> int:
    result = fold_frames(sys.stdin.buffer, int(argv[0]))
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
