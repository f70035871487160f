"""A generated hive home (contract §1.1, §5): queens' sessions and colonies on disk.

Deterministic (seeded), written the way hive writes: one `json.dumps(event)` per
line with a naive local timestamp, compact meta.json, triggers.json as a list.
It also plants what real trees contain: blank lines, a fork marker line with
missing keys, a line cut off by a crash, and a broken colony metadata.json.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEENS = ("queen_technology", "queen_growth", "queen_finance_fundraising")
START = dt.datetime(2026, 3, 28, 23, 30)  # naive local time, across the Berlin DST switch


@dataclass
class Tree:
    home: Path
    sessions: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (queen, events)
    bad_lines: list[tuple[str, int]] = field(default_factory=list)  # (relative file, line)

    @property
    def good_events(self) -> int:
        return sum(n for _, n in self.sessions.values())


def hive_line(event_type: str, data: dict[str, Any], at: dt.datetime, **ids: Any) -> str:
    body = {
        "type": event_type,
        "stream_id": ids.get("stream_id", "queen"),
        "node_id": ids.get("node_id"),
        "execution_id": ids.get("execution_id"),
        "data": data,
        "timestamp": at.isoformat(),
        "correlation_id": None,
        "colony_id": ids.get("colony_id"),
    }
    return json.dumps(body, default=str)


def session_lines(rng: random.Random, queen: str, count: int, at: dt.datetime) -> list[str]:
    lines = [
        hive_line("queen_identity_selected", {"queen_id": queen, "name": "Q", "title": "T"}, at),
        hive_line("queen_phase_changed", {"phase": "independent"}, at),
    ]
    for i in range(count - 2):
        at += dt.timedelta(seconds=rng.randint(1, 90))
        kind = rng.choice(("input", "turn", "tool", "delta", "trigger"))
        if kind == "input":
            lines.append(hive_line("client_input_received", {"content": f"message {i} ✓"}, at))
        elif kind == "turn":
            data = {"stop_reason": "end_turn", "model": "m", "input_tokens": i, "iteration": i}
            lines.append(hive_line("llm_turn_complete", data, at, node_id="queen"))
        elif kind == "tool":
            data = {"tool_use_id": f"t{i}", "tool_name": "search", "tool_input": {"q": i}}
            lines.append(hive_line("tool_call_started", data, at, execution_id=f"x{i % 3}"))
        elif kind == "delta":
            data = {"content": "a", "snapshot": f"partial {i}", "inner_turn": 0}
            lines.append(hive_line("client_output_delta", data, at, stream_id="worker"))
        else:
            data = {"trigger_id": "daily", "trigger_type": "timer", "name": "Daily", "task": "t"}
            lines.append(hive_line("trigger_available", data, at))
    return lines


def write_tree(home: Path, *, sessions: int = 12, events: int = 300, seed: int = 7) -> Tree:
    rng = random.Random(seed)
    tree = Tree(home)
    for n in range(sessions):
        queen = QUEENS[n % len(QUEENS)]
        sid = f"session_20260328_2330{n:02d}_{rng.getrandbits(32):08x}"
        folder = home / "agents" / "queens" / queen / "sessions" / sid
        folder.mkdir(parents=True)
        at = START + dt.timedelta(minutes=n)
        lines = session_lines(rng, queen, events, at)
        good = len(lines)
        rel = f"agents/queens/{queen}/sessions/{sid}/events.jsonl"
        if n == 0:  # blank lines and a fork marker written outside the bus (keys missing)
            marker = {
                "type": "colony_fork_marker",
                "stream_id": "queen",
                "data": {"parent_session_id": "p", "summary_preview": "s"},
                "timestamp": at.isoformat(),
            }
            lines[1:1] = ["", json.dumps(marker), "   "]
            good += 1
        if n == 1:  # garbage in the middle, and a last line cut off by a crash
            lines.insert(5, "{not json")
            tree.bad_lines.append((rel, 6))
            lines.append('{"type": "llm_text_delta", "data": {"conte')
            tree.bad_lines.append((rel, len(lines)))
        if n == 2:  # an event whose timestamp hive could never have written
            lines.insert(3, json.dumps({"type": "x", "data": {}, "timestamp": "yesterday"}))
            tree.bad_lines.append((rel, 4))
        ending = "" if n == 1 else "\n"
        (folder / "events.jsonl").write_text("\n".join(lines) + ending, encoding="utf-8")
        meta = {"created_at": at.timestamp(), "queen_id": queen, "agent_path": None}
        (folder / "meta.json").write_text(json.dumps(meta, separators=(",", ":")))
        tree.sessions[sid] = (queen, good)
    colonies = home / "colonies"
    for name in ("research", "sales"):
        folder = colonies / name
        folder.mkdir(parents=True)
        triggers = [
            {
                "id": "daily",
                "name": "Daily",
                "trigger_type": "timer",
                "trigger_config": {"cron": "0 9 * * *"},
                "task": "report",
            }
        ]
        (folder / "triggers.json").write_text(json.dumps(triggers, indent=2) + "\n")
        metadata: dict[str, object] = {
            "colony_name": name,
            "queen_name": "queen_growth",
            "workers": {},
        }
        (folder / "metadata.json").write_text(json.dumps(metadata))
    broken = colonies / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{")
    return tree
