"""The create path's shortcuts give exactly what the long way gives: the default queen
without a path walk, the session-id stamp computed once a second, event ids made in
one go, and concurrent creates folded once each with the follower running."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from api.core.agent_files import AgentFileError
from api.core.queens import default_queen
from api.core.service import SessionService, _with_ids
from api.http.sessions import NO_PROFILE_DEFAULT_QUEEN, _default_queen, new_session_id
from eventstore import NewEvent, RecordedEvent, open_store
from projections import catalogue as cat
from projections.commands import Queen, StartSession, decide_start

SESSION_ID = re.compile(r"^session_\d{8}_\d{6}_[0-9a-f]{8}$")


def _queens(home: Path) -> Path:
    return home / "agents" / "queens"


def test_default_queen_without_a_folder_matches_the_long_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "home"))  # nothing there at all
    assert _default_queen() == default_queen() == NO_PROFILE_DEFAULT_QUEEN
    _queens(tmp_path / "home").mkdir(parents=True)  # the queens folder, not this queen
    assert _default_queen() == default_queen() == NO_PROFILE_DEFAULT_QUEEN
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "file"))  # a path through a file
    assert _default_queen() == default_queen() == NO_PROFILE_DEFAULT_QUEEN


def test_default_queen_with_a_profile_reads_it_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_HOME", str(tmp_path))
    folder = _queens(tmp_path) / "queen_technology"
    folder.mkdir(parents=True)
    (folder / "profile.yaml").write_text("name: Ada\ntitle: Head of Tech\n")
    assert _default_queen() == default_queen() == Queen("queen_technology", "Ada", "Head of Tech")
    (folder / "profile.yaml").write_text("name: Grace\n")  # edited: no stale copy
    assert _default_queen() == Queen("queen_technology", "Grace", "")


def test_default_queen_linked_out_of_the_root_is_refused_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "home"))
    outside = tmp_path / "outside"
    outside.mkdir()
    _queens(tmp_path / "home").mkdir(parents=True)
    (_queens(tmp_path / "home") / "queen_technology").symlink_to(outside)
    for way in (default_queen, _default_queen):
        with pytest.raises(AgentFileError):
            way()


@pytest.mark.parametrize(
    "now", [1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.9989, 1_700_000_000.9999996]
)
def test_session_id_stamp_matches_strftime(now: float) -> None:
    expected = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d_%H%M%S")
    for _ in range(2):  # computed, then (within the second) reused
        made = new_session_id(now)
        assert SESSION_ID.match(made) and made[8:23] == expected, made
    assert new_session_id(now) != new_session_id(now)  # the random tail still differs


def test_event_ids_are_uuid7_text_and_given_ids_are_kept() -> None:
    given = NewEvent("b", {"x": 2}, {"m": 1}, "mine")
    events = [NewEvent("a", {"x": 1}), given, NewEvent("c", None)]
    seen: set[str] = set()
    for _ in range(2000):
        out = _with_ids(events)
        assert [e.type for e in out] == ["a", "b", "c"] and out[1] is given
        for e in (out[0], out[2]):
            assert isinstance(e.event_id, str)
            parsed = uuid.UUID(e.event_id)
            assert str(parsed) == e.event_id
            assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
            seen.add(e.event_id)
        assert (out[0].data, out[2].data, out[0].metadata) == ({"x": 1}, None, None)
    assert len(seen) == 4000
    assert _with_ids([given]) == [given]


async def test_concurrent_creates_fold_once_each_with_the_follower_running(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionService(store)
    await service.start()
    seen: list[int] = []
    service.listeners.append(lambda event: seen.append(event.position))
    queen = Queen("queen_technology", "Technology")

    async def create(i: int) -> None:
        start = StartSession(f"s{i}", 1000.0 + i, queen)
        state = await service.execute(f"s{i}", lambda s: decide_start(s, start))
        assert state.version == 3 and state.live  # the response reflects the command

    for _ in range(3):  # rounds of concurrent creates, sharing group commits
        await asyncio.gather(*(create(len(seen) // 3 + i) for i in range(40)))
    head = await store.head_position()
    assert seen == list(range(1, head + 1))  # every event folded once, in log order
    assert service.position == head == 360
    everything = await store.read_all(after_position=0, limit=10_000)
    assert cat.fold_all(everything).sessions == service.catalogue.sessions
    await service.stop()
    await store.close()


async def test_the_follower_does_not_read_back_what_commands_folded_themselves(
    db_url: str,
) -> None:
    store = await open_store(db_url)
    store.poll_seconds = 60.0  # only commits wake the follower here
    service = SessionService(store)
    await service.start()
    read_back = 0
    original = store.read_all

    async def counting(
        after_position: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        nonlocal read_back
        events = await original(after_position, limit, types)
        read_back += sum(1 for e in events if e.position <= service.position)
        return events

    store.read_all = counting  # type: ignore[method-assign]
    queen = Queen("queen_technology", "Technology")
    for i in range(20):
        start = StartSession(f"s{i}", 1000.0 + i, queen)
        await service.execute(f"s{i}", functools.partial(decide_start, cmd=start))
        for _ in range(10):  # let the follower take its turn after the commit
            await asyncio.sleep(0)
    assert service.position == await store.head_position() == 60
    assert read_back == 0  # each commit's rows were folded once, by the command
    await service.stop()
    await store.close()
