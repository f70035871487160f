"""hive's own JSONL tail algorithm, as a baseline for `hivelog bench store`.

A faithful transcription of `_read_events_tail` from hive's routes_sessions.py
(ae2aa30ed; see ../shared/seed/routes_sessions.txt): a forward scan for files up
to 1 MiB, else 64 KiB chunks read backwards plus a full newline-count pass for
the exact total. It is only ever used to measure against; hivelog never reads
JSONL this way.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any

REVERSE_TAIL_THRESHOLD_BYTES = 1 << 20
REVERSE_TAIL_CHUNK_BYTES = 64 * 1024


def read_events_tail(events_path: Path, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
    """Returns (events oldest-first, total non-blank lines, truncated)."""
    file_size = events_path.stat().st_size
    if file_size <= REVERSE_TAIL_THRESHOLD_BYTES:
        tail_raw: deque[str] = deque(maxlen=limit)
        total = 0
        with open(events_path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                total += 1
                tail_raw.append(line)
        events: list[dict[str, Any]] = []
        for raw in tail_raw:
            try:
                events.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return events, total, total > len(events)

    pieces: list[bytes] = []
    newline_count = 0
    with open(events_path, "rb") as fb:
        fb.seek(0, os.SEEK_END)
        pos = fb.tell()
        while pos > 0 and newline_count <= limit:
            read_size = min(REVERSE_TAIL_CHUNK_BYTES, pos)
            pos -= read_size
            fb.seek(pos)
            chunk = fb.read(read_size)
            newline_count += chunk.count(b"\n")
            pieces.append(chunk)
    pieces.reverse()
    blob = b"".join(pieces)
    raw_lines = blob.split(b"\n")
    if pos > 0 and raw_lines:
        raw_lines = raw_lines[1:]
    decoded = [ln.decode("utf-8", errors="replace").strip() for ln in raw_lines]
    decoded = [ln for ln in decoded if ln]
    if len(decoded) > limit:
        decoded = decoded[-limit:]
    events = []
    for raw in decoded:
        try:
            events.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    total = 0
    with open(events_path, "rb") as fb:
        while True:
            chunk = fb.read(1 << 20)
            if not chunk:
                break
            total += chunk.count(b"\n")
    return events, total, total > len(events)
