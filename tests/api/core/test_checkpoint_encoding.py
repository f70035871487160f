"""The catalogue checkpoint is encoded on the event loop in slices: the same bytes as
`catalogue.encode`, with the loop free to run other tasks between slices."""

from __future__ import annotations

import asyncio

import pytest

from api.core import service as service_module
from api.core.service import SessionService, _encode_catalogue, _finish, _finish_sliced
from eventstore import open_store
from projections import catalogue as cat
from tests.support.tools_support import hive_event

SESSIONS = 200


async def _service(db_url: str) -> SessionService:
    store = await open_store(db_url)
    await asyncio.gather(
        *(
            store.append(f"session_{n}", [hive_event("session_created", {"model": f"m{n}"})])
            for n in range(SESSIONS)
        )
    )
    service = SessionService(store)
    await service.start()
    return service


async def test_sliced_encoding_gives_the_same_bytes_and_lets_the_loop_run(db_url: str) -> None:
    service = await _service(db_url)
    try:
        snapshot = service._snapshot()
        turns = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        encoded, cache = await _finish_sliced(_encode_catalogue(snapshot, {}, 0.0))
        done.set()
        await ticking
        assert encoded == cat.encode(service.catalogue)
        assert turns >= SESSIONS // 16 - 1  # a pause after every 16 sessions
        assert set(cache) == set(service.catalogue.sessions)

        again, _ = _finish(_encode_catalogue(snapshot, cache))  # from the cache, unsliced
        assert again == encoded
    finally:
        await service.stop()
        await service.store.close()


async def test_a_saved_checkpoint_is_the_catalogue_encoded(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "ENCODE_SLICE_SECONDS", 0.0)  # slice at every chance
    service = await _service(db_url)
    try:
        await service.save_checkpoint()
        saved = await service.store.load_checkpoint(service.checkpoint_name)
        assert saved is not None and saved.state == cat.encode(service.catalogue)
        assert cat.decode_state(saved.state) == service.catalogue
    finally:
        await service.stop()
        await service.store.close()
