"""The fold's child checks the session events' data it parses for the fold, so the
audit's pass does not parse it again: its fold equals the service's fold event by event,
it counts exactly the events the payload check would fault, a log it finds sound is
passed once (the parent still checks the metadata), and one it finds faulty is passed
again in the parent, giving the row-by-row report."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections import catalogue as cat
from tests.support.tools_support import sqlite_path
from tests.tools.test_audit_chunks import report_of, seed
from tests.tools.test_audit_fold import _log, _reference, _spy_spawn, steps
from tools import audit, audit_checked_fold, audit_fold, audit_source
from tools.audit_checks import ENVELOPE_REQUIRED, envelope_moment, envelope_problem
from tools.audit_projections import recorded

STAMPS = (
    "2026-11-24T15:00:00+00:00",
    "2026-11-24T15:00:00Z",  # UTC too
    "2026-11-24T15:00:00",  # naive: not UTC
    "2026-11-24T15:00:00+02:00",
    "2026-11-24T15:00:00-00:00",
    "yesterday",
    "",
)
values: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.integers(), st.text(max_size=3), st.sampled_from(STAMPS), st.just({})
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[Any, str]:
    """An envelope-like body (some keys dropped, some values of another kind) and the
    event type it is checked against."""
    event_type = draw(st.sampled_from(("a", "b")))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(values, st.lists(st.integers(), max_size=2))), event_type
    body: dict[str, Any] = {key: None for key in ENVELOPE_REQUIRED}
    body.update(type=draw(st.sampled_from(("a", "b"))), data={"x": 1})
    body["timestamp"] = draw(st.one_of(st.sampled_from(STAMPS), values))
    if draw(st.booleans()):
        body["data"] = draw(values)
    for key in draw(st.sets(st.sampled_from(ENVELOPE_REQUIRED), max_size=2)):
        del body[key]
    return body, event_type


@settings(max_examples=400, deadline=None)
@given(case=bodies())
def test_envelope_moment_passes_what_envelope_problem_passes(case: tuple[Any, str]) -> None:
    body, event_type = case
    moment = envelope_moment(body, event_type)
    assert (moment is None) == (envelope_problem(body, event_type) is not None)
    if moment is not None:
        assert moment.utcoffset() == dt.timedelta(0)


DEFECTS = (
    None,
    b'{"type": ',  # not JSON
    b"[1, 2]",  # JSON, not an object
    ("timestamp", "2026-11-24T15:00:00"),  # naive
    ("timestamp", "2026-11-24T15:00:00+02:00"),  # not UTC
    ("timestamp", "2026-11-24T15:00:00Z"),  # UTC: sound
    ("timestamp", "soon"),
    ("timestamp", 17),
    ("type", "other"),
    ("data", [1]),
    ("colony_id", ...),  # a required key missing
)


def _full(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """`_log`'s row with hive's whole envelope where it wrote one with a time (it leaves
    out the keys the fold does not read)."""
    body = orjson.loads(row[5])
    if row[1].startswith("$") or not isinstance(body, dict) or "timestamp" not in body:
        return row
    full = {key: body.get(key) for key in ENVELOPE_REQUIRED}
    return (*row[:5], orjson.dumps(full), *row[6:])


def _defective(row: tuple[Any, ...], defect: Any) -> tuple[Any, ...]:
    if defect is None:
        return row
    if isinstance(defect, bytes):
        data = defect
    else:
        body = orjson.loads(row[5])
        if not isinstance(body, dict):
            return row
        key, value = defect
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
        data = orjson.dumps(body)
    return (*row[:5], data, *row[6:])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=steps,
    defects=st.lists(st.integers(0, len(DEFECTS) - 1), max_size=60),
    run_max=st.integers(1, 4),
    cut=st.integers(0, 100),
    chunk=st.integers(1, 7),
)
def test_checked_fold_equals_the_service_fold_and_counts_the_payload_faults(
    plan: list[tuple[int, int, int]], defects: list[int], run_max: int, cut: int, chunk: int
) -> None:
    """Folded whole, or shared between two folds (one fed in chunks, as the parent's
    pass feeds it; the other through its checkpoint encoding, as the child answers) and
    merged: the service's fold byte for byte, and the payload check's count."""
    rows = [
        _defective(_full(tuple(r)), DEFECTS[defects[i]] if i < len(defects) else None)
        for i, r in enumerate(_log(plan))
    ]
    reference = cat.fold_all(recorded(r) for r in rows)
    faults = 0
    for row in rows:
        if row[1].startswith("$"):
            continue
        try:
            body = orjson.loads(row[5])
        except orjson.JSONDecodeError:
            faults += 1
            continue
        faults += envelope_problem(body, row[4]) is not None
    checked_rows = [(r[1], r[2], r[0], r[4], r[5], r[7]) for r in rows]
    previous, audit_checked_fold.RUN_MAX = audit_checked_fold.RUN_MAX, run_max
    try:
        state, unsound = audit_checked_fold.fold_checked(checked_rows)
    finally:
        audit_checked_fold.RUN_MAX = previous
    reference.position = state.position = len(rows)
    assert cat.to_dict(state) == cat.to_dict(reference)
    assert cat.encode(state) == cat.encode(reference)
    assert unsound == faults
    here = audit_checked_fold.CheckedFold(lambda s: audit_checked_fold.share(s) < cut)
    there = audit_checked_fold.CheckedFold(lambda s: audit_checked_fold.share(s) >= cut)
    for start in range(0, len(checked_rows), chunk):
        here.feed(checked_rows[start : start + chunk])
    there.feed(checked_rows)
    there.state.position = len(rows)
    answered = cat.decode_state(cat.encode(there.state))
    assert answered is not None
    whole = audit_checked_fold.merged(here, (answered, there.inserted))
    whole.position = len(rows)
    assert cat.encode(whole) == cat.encode(reference)
    assert here.unsound + there.unsound == faults
    sessions = sum(not r[1].startswith("$") for r in rows)
    if sessions and not any(defects) and all(flavour != 3 for *_, flavour in plan):
        assert unsound == 0  # (whole envelopes: some logs are sound)


def _count_passes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    passes: list[bool] = []
    real = audit._pass

    async def counted(*args: Any) -> bool:
        again = await real(*args)
        passes.append(again)
        return again

    monkeypatch.setattr(audit, "_pass", counted)
    return passes


def _broken(db_url: str, tmp_path: Path, statement: str) -> str:
    copy = tmp_path / "broken.db"
    shutil.copy(sqlite_path(db_url), copy)
    conn = sqlite3.connect(copy)
    conn.execute(statement)
    conn.commit()
    conn.close()
    return f"sqlite:///{copy}"


@pytest.mark.parametrize(
    ("statement", "passes_expected"),
    [
        ("SELECT 1", [False]),  # sound: one pass, the child checked the data
        # a metadata fault the child does not see: still one pass, the parent finds it
        ("UPDATE events SET metadata = CAST('nope' AS BLOB) WHERE position = 56", [False]),
        # a session event's data the child faults: the pass again, here
        (
            "UPDATE events SET data = CAST(REPLACE(CAST(data AS TEXT), '+00:00', '+01:00') "
            "AS BLOB) WHERE position = 57",
            [True, False],
        ),
        ("UPDATE events SET data = CAST('[1]' AS BLOB) WHERE position = 58", [True, False]),
    ],
)
@pytest.mark.parametrize("parent_share", [0, 30, 100])
async def test_the_child_checks_the_data_and_the_report_is_row_by_row(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
    passes_expected: list[bool],
    parent_share: int,
) -> None:
    """(The parent folds none, some of the 12 sessions, or all of them.)"""
    monkeypatch.setattr(audit_fold, "PARENT_SHARE", parent_share)
    await seed(db_url)
    url = _broken(db_url, tmp_path, statement)
    monkeypatch.setattr(audit_source, "FETCH", 37)
    spawned = _spy_spawn(monkeypatch)
    passes = _count_passes(monkeypatch)
    checked_to: list[int] = []
    real_start = audit_fold.ForkedCatalogueCheck.start

    async def start(self: audit_fold.ForkedCatalogueCheck, source: Any) -> None:
        await real_start(self, source)
        checked_to.append(self.data_checked_to)

    monkeypatch.setattr(audit_fold.ForkedCatalogueCheck, "start", start)
    forked = await report_of(url, fork_fold=True)
    assert len(spawned) == 1 and spawned[0].returncode == 0
    assert passes == passes_expected
    assert checked_to[0] == forked["stats"]["projection_position"] > 0
    assert checked_to[1:] == [-1] * (len(passes) - 1)  # a pass again checks it all here
    _reference(monkeypatch)
    reference = await report_of(url)
    assert forked == reference
    faulted = {f["position"] for f in reference["faults"] if f["check"] == "payloads"}
    assert faulted == ({56, 57, 58} & {int(w) for w in statement.split() if w.isdigit()})
