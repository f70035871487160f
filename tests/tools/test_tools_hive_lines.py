"""hive line -> envelope (pure), and the round-trip property import(export(log)) == log."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import EventStore, open_store
from projections import catalogue as cat
from projections.envelope import new_event
from tools.export_hive import export_hive
from tools.hive_lines import (
    IMPORT_NAMESPACE,
    LineError,
    Origin,
    envelope_from_line,
    event_from_line,
    line_event_id,
    utc_timestamp,
)
from tools.import_hive import Importer, Summary, find_sessions

BERLIN = ZoneInfo("Europe/Berlin")


def line(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def test_naive_local_time_becomes_utc_and_the_original_is_kept() -> None:
    winter = line(type="t", data={}, timestamp="2026-01-10T12:00:00.5")
    body, original = envelope_from_line(winter, BERLIN)
    assert body["timestamp"] == "2026-01-10T11:00:00.500000+00:00"
    assert original == "2026-01-10T12:00:00.5"
    summer, _ = envelope_from_line(line(type="t", timestamp="2026-07-10T12:00:00"), BERLIN)
    assert summer["timestamp"] == "2026-07-10T10:00:00+00:00"
    local, _ = envelope_from_line(line(type="t", timestamp="2026-07-10T12:00:00"), None)
    assert dt.datetime.fromisoformat(local["timestamp"]).utcoffset() == dt.timedelta(0)


def test_aware_timestamps() -> None:
    utc = line(type="t", timestamp="2026-07-10T12:00:00+00:00")
    assert envelope_from_line(utc, BERLIN) == (
        envelope_from_line(utc, None)[0],
        None,
    )  # already UTC: kept byte for byte, nothing to remember
    assert envelope_from_line(utc, BERLIN)[0]["timestamp"] == "2026-07-10T12:00:00+00:00"
    body, original = envelope_from_line(line(type="t", timestamp="2026-07-10T12:00:00+02:00"), None)
    assert body["timestamp"] == "2026-07-10T10:00:00+00:00"
    assert original == "2026-07-10T12:00:00+02:00"


def test_envelope_shape() -> None:
    raw = line(data=None, type="colony_fork_marker", timestamp="2026-01-01T00:00:00Z", extra=1)
    body, _ = envelope_from_line(raw, BERLIN)
    assert list(body) == [
        "type",
        "stream_id",
        "node_id",
        "execution_id",
        "data",
        "timestamp",
        "correlation_id",
        "colony_id",
        "run_id",
        "extra",
    ]
    assert body["data"] == {} and body["stream_id"] == "queen" and body["run_id"] is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (line(data={}, timestamp="2026-01-01T00:00:00"), "no event type"),
        (line(type="t", data=[1], timestamp="2026-01-01T00:00:00"), "data is not an object"),
        (line(type="t", data={}), "no timestamp"),
        (line(type="t", timestamp="tomorrow"), "not ISO-8601"),
        (line(type="x" * 300, timestamp="2026-01-01T00:00:00"), "longer than 256"),
    ],
)
def test_lines_that_cannot_be_imported(raw: bytes, reason: str) -> None:
    with pytest.raises(LineError, match=reason):
        envelope_from_line(raw, BERLIN)


def test_oversized_event_is_refused_before_the_store() -> None:
    raw = line(type="t", data={"blob": "x" * (1 << 20)}, timestamp="2026-01-01T00:00:00")
    with pytest.raises(LineError, match="1 MiB"):
        event_from_line(raw, Origin("a/events.jsonl", 1), BERLIN)


def test_event_ids_are_uuid5_of_file_and_line() -> None:
    origin = Origin("agents/queens/q/sessions/s/events.jsonl", 17)
    expected = uuid.uuid5(IMPORT_NAMESPACE, "agents/queens/q/sessions/s/events.jsonl:17")
    assert line_event_id(origin) == str(expected)
    event = event_from_line(line(type="t", timestamp="2026-01-01T00:00:00"), origin, BERLIN)
    assert event.event_id == str(expected)
    assert orjson.loads(event.metadata)["hive_import"] == {
        "source": origin.source,
        "line": 17,
        "original_timestamp": "2026-01-01T00:00:00",
    }


# ---- round trip ----------------------------------------------------------------------

TYPES = st.sampled_from(
    [
        "session_created",
        "queen_identity_selected",
        "queen_phase_changed",
        "client_input_received",
        "llm_turn_complete",
        "trigger_available",
        "trigger_fired",
        "custom",
    ]
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20)
)
PAYLOADS = st.dictionaries(
    st.sampled_from(["content", "phase", "queen_id", "trigger_id", "k", "ü"]),
    st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3)),
    max_size=4,
)
EVENTS = st.lists(st.tuples(TYPES, PAYLOADS, st.floats(1e9, 2e9)), min_size=1, max_size=8)
LOGS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), EVENTS, min_size=1, max_size=4
)


async def _sessions(store: EventStore) -> dict[str, list[tuple[str, bytes]]]:
    found: dict[str, list[tuple[str, bytes]]] = {}
    for event in await store.read_all(0, 100_000):
        if not event.stream_id.startswith("$"):
            found.setdefault(event.stream_id, []).append((event.type, event.data_json))
    return found


async def _round_trip(
    log: dict[str, list[tuple[str, dict[str, Any], float]]], folder: Path
) -> None:
    first = await open_store(f"sqlite:///{folder / 'first.db'}")
    second = await open_store(f"sqlite:///{folder / 'second.db'}")
    try:
        for sid, events in log.items():
            await first.append(sid, [new_event(t, d, timestamp=ts) for t, d, ts in events])
        await export_hive(first, folder / "home", None)
        summary = Summary()
        importer = Importer(second, folder / "home", None, summary, dry_run=False)
        for session in find_sessions(folder / "home"):
            await importer.session(session, lambda n: None)
        assert summary.problem_count == 0, summary.problems
        assert await _sessions(second) == await _sessions(first)
        # hive's layout has no order across sessions, so compare the catalogues by id
        folded = [cat.fold_all(await s.read_all(0, 100_000)).sessions for s in (first, second)]
        assert folded[0] == folded[1]
    finally:
        await first.close()
        await second.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LOGS)
def test_import_of_export_reproduces_sessions_and_events(
    log: dict[str, list[tuple[str, dict[str, Any], float]]],
) -> None:
    with tempfile.TemporaryDirectory(prefix="hivelog-rt-") as folder:
        asyncio.run(_round_trip(log, Path(folder)))


# zones with a DST shift, a half-hour shift inside an hour (Lord Howe), odd offsets
# (St John's, Kathmandu), a date-line jump (Apia) and old local mean times
ZONES = [
    ZoneInfo(name)
    for name in (
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "America/St_Johns",
        "Asia/Kathmandu",
        "Pacific/Apia",
        "America/Sao_Paulo",
        "Europe/Dublin",
        "UTC",
    )
]


def _converted_per_line(value: str, tz: dt.tzinfo) -> str:
    """The zone looked up for this very time (what utc_timestamp did for every line)."""
    moment = dt.datetime.fromisoformat(value).replace(tzinfo=tz)
    return moment.astimezone(dt.UTC).isoformat()


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.datetimes(min_value=dt.datetime(1850, 1, 1), max_value=dt.datetime(2100, 12, 31)),
)
def test_the_offset_remembered_per_hour_converts_as_a_look_up_per_line(
    tz: dt.tzinfo, moment: dt.datetime
) -> None:
    value = moment.isoformat()
    assert utc_timestamp(value, tz) == (_converted_per_line(value, tz), value)


@pytest.mark.parametrize("tz", ZONES)
def test_every_minute_around_this_years_transitions_converts_as_before(tz: dt.tzinfo) -> None:
    start = dt.datetime(2026, 1, 1)
    for minute in range(0, 366 * 24 * 60, 7):  # every 7th minute of the year
        value = (start + dt.timedelta(minutes=minute, seconds=minute % 60)).isoformat()
        assert utc_timestamp(value, tz) == (_converted_per_line(value, tz), value)
