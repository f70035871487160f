"""Argument declarations for every `hivelog` subcommand, and nothing else.

Building the whole parser imports only this module (and argparse): a
subcommand's implementation, with its dependencies, is imported when it runs.
So `hivelog serve --help` works on a runtime-only install, and a bench-only
package missing cannot break `serve`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

Declare = Callable[[argparse.ArgumentParser], None]


def positive_seconds(text: str) -> float:
    """A duration for a timeout: a finite number of seconds above zero (0, a negative
    value or nan would fire at once or break every connection's timer)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds above 0")
    return seconds


def serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    parser.add_argument(
        "--agents-root",
        action="append",
        default=None,
        metavar="DIR",
        help="allowed root for agent folders (repeatable; env HIVELOG_AGENTS_ROOTS; "
        "default HIVE_HOME/colonies and HIVE_HOME/agents)",
    )
    parser.add_argument(
        "--token", default=None, help="require X-Hive-Token on /api/* (env HIVELOG_TOKEN)"
    )
    parser.add_argument(
        "--node-id", default=None, help="stable node identity (env HIVELOG_NODE_ID)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument(
        "--header-timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds to receive a request head, else close (default 10)",
    )
    parser.add_argument(
        "--http",
        choices=["httptools", "h11"],
        default=None,
        help="HTTP protocol (default httptools where installed, else h11)",
    )
    parser.add_argument(
        "--body-timeout",
        type=positive_seconds,
        default=30.0,
        help="seconds to receive a request body, else 408 (default 30)",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=positive_seconds,
        default=5.0,
        help="seconds an idle kept-alive connection stays open (default 5)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        help="connections and requests in flight before 503 (default 4096)",
    )


def replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", nargs="?", help="the session (stream) to print")
    parser.add_argument(
        "--from",
        dest="from_position",
        type=int,
        default=0,
        metavar="POS",
        help="start at this global position (inclusive)",
    )
    parser.add_argument("--types", default=None, help="only these event types, comma-separated")
    parser.add_argument("--follow", action="store_true", help="keep printing new events")
    parser.add_argument("--json", action="store_true", help="JSONL: one full event per line")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="fold every projection from position 0 and compare with the checkpoints",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="with --rebuild: store the rebuilt state as the new checkpoint",
    )
    parser.add_argument(
        "--archive",
        action="append",
        metavar="DIR",
        help="with --rebuild: fold this `hivelog archive` folder's events too (repeatable)",
    )


def audit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--archive",
        action="append",
        metavar="DIR",
        help="a folder written by `hivelog archive`: its events are folded for the "
        "projection checks (repeatable)",
    )
    parser.add_argument(
        "--from",
        dest="from_position",
        type=int,
        default=None,
        metavar="POSITION",
        help="verify the hash chain from this position on (the other checks are skipped)",
    )


def backup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", metavar="DEST", help="a new (or empty) folder for the backup")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def restore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="a folder written by `hivelog backup`")
    parser.add_argument("--force", action="store_true", help="empty a non-empty target first")
    parser.add_argument("--json", action="store_true", help="print the verification as JSON")


def archive(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", metavar="AGE", help="events older than AGE (90d, 12h, 30m)")
    which.add_argument("--keep-last", type=int, metavar="N", help="keep each stream's newest N")
    parser.add_argument("--session", metavar="ID", help="only this session's stream")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="a new folder")
    parser.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def restore_archive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="DIR", help="a folder written by `hivelog archive`")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def copy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="URL", help="source log")
    parser.add_argument("--to", dest="target", required=True, metavar="URL", help="target log")
    parser.add_argument("--force", action="store_true", help="empty a non-empty target first")
    parser.add_argument("--json", action="store_true", help="print the verification as JSON")


def export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", default=None, metavar="ID", help="only this session")
    parser.add_argument("--format", choices=["jsonl", "hive"], default="jsonl")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PATH",
        help="jsonl: file (default stdout); hive: the HIVE_HOME folder to write into",
    )
    parser.add_argument(
        "--force", action="store_true", help="hive: overwrite existing events.jsonl files"
    )
    parser.add_argument(
        "--layout",
        choices=["54fd8db", "3c390c9e"],
        default="54fd8db",
        help="hive: the folder layout of that hive version (default: 54fd8db's queens/ and "
        "colonies/<c>/queens/; 3c390c9e: agents/queens/)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def import_hive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hive_home", metavar="HIVE_HOME", help="hive's home folder (~/.hive)")
    parser.add_argument(
        "--timezone",
        default=None,
        metavar="IANA",
        help="zone of hive's naive timestamps (default: this machine's local zone)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and report; append nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


# -- bench targets: `hivelog bench WHAT` takes every target's options -----------------


def bench_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store-dir",
        default=None,
        help="folder for the bench's temporary files (default: a new temp folder)",
    )


def bench_http(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-events", type=int, default=None, help="session size (1M)")
    parser.add_argument("--http-seconds", type=float, default=None, help="load per server (10)")
    parser.add_argument("--http-connections", type=int, default=16, help="loader connections")
    parser.add_argument("--http-subscribers", type=int, default=None, help="SSE clients (100)")
    parser.add_argument("--http-sse-events", type=int, default=None, help="events timed (200)")
    parser.add_argument(
        "--http-sessions", type=int, default=None, help="sessions read at random (1,000)"
    )
    parser.add_argument(
        "--http-loader", choices=["auto", "wrk", "httpx"], default="auto", help="load generator"
    )


def bench_timers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timers-count", type=int, default=10_000, help="active timers")
    parser.add_argument("--timers-sessions", type=int, default=1_000, help="sessions")
    parser.add_argument(
        "--timers-interval", type=float, default=10.0, help="each timer's interval (s)"
    )
    parser.add_argument("--timers-seconds", type=float, default=30.0, help="measuring window (s)")
    parser.add_argument("--timers-dir", default=None, help="folder for the bench's database")


def bench_sessions(parser: argparse.ArgumentParser) -> None:
    """No options of its own (it honours --store-dir)."""


# target -> (implementation module, its options)
def bench_subscriptions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subs-events", type=int, default=None, help="backlog drained (100k)")
    parser.add_argument("--subs-live", type=int, default=None, help="events timed live (5000)")
    parser.add_argument("--subs-workers", type=int, default=4, help="worker threads (4)")
    parser.add_argument(
        "--subs-db", default=None, help="store URL for the server (default: a fresh SQLite file)"
    )


def bench_tools(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools-events", type=int, default=None, help="events in the hive home (1M; quick 200k)"
    )
    parser.add_argument("--tools-reps", type=int, default=None, help="repetitions (2; quick 1)")
    parser.add_argument("--tools-dir", default=None, help="folder for the hive home and databases")


def worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group", help="consumer group name")
    parser.add_argument("--exec", dest="command", required=True, help="shell command to run")
    parser.add_argument(
        "--url",
        default=None,
        help="hivelog's address (env HIVELOG_URL; default http://127.0.0.1:8787)",
    )
    parser.add_argument("--token", default=None, help="X-Hive-Token (env HIVELOG_TOKEN)")
    parser.add_argument("--concurrency", type=int, default=1, help="commands run at once")
    parser.add_argument("--types", default=None, help="comma-separated types (with --create)")
    parser.add_argument(
        "--create", action="store_true", help="create the group if it does not exist"
    )
    parser.add_argument("--worker-id", default=None, help="name shown on deliveries")


BENCH_TARGETS: dict[str, tuple[str, Declare]] = {
    "store": ("tools.bench_store", bench_store),
    "http": ("tools.bench_http", bench_http),
    "timers": ("tools.bench_timers", bench_timers),
    "sessions": ("tools.bench_sessions", bench_sessions),
    "subscriptions": ("tools.bench_subscriptions", bench_subscriptions),
    "tools": ("tools.bench_tools", bench_tools),
}


def bench(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        choices=[*sorted(BENCH_TARGETS), "all"],
        help="what to measure; `all`: every target, one table with issue 15's targets",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes; under a minute (all: under 3)"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    for _, declare in BENCH_TARGETS.values():
        declare(parser)
