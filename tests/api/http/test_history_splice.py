"""The database-built history page (`store.tail_array`) answers byte for byte what the
per-row path answers, fields, archive cut, ETag and all, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from api.core.settings import Settings
from eventstore import EventStore, TailArray
from tests.support.server import serve_in_process
from tests.support.sse_client import events, store_at


async def test_spliced_page_equals_the_per_row_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hivelog.db'}"
    async with store_at(url) as store:
        await store.append("whole", events("client_output_delta", 30))
        await store.append("cut", events("client_output_delta", 12))
        await store.append("mixed", events("client_output_delta", 4))
        await store.append("mixed", [*events("llm_turn_complete", 3)])
        await store.archive_before("cut", 5, 4)
    app = create_app(Settings(db_url=url, agents_roots=(tmp_path,)))
    async with serve_in_process(app) as base_url:
        store = app.state.parts.store
        requests = [
            (sid, limit)
            for sid in ("whole", "cut", "mixed", "nobody")
            for limit in (1, 5, 8, 30, 100)
        ]

        async def answers() -> list[tuple[int, bytes, str | None]]:
            out = []
            async with httpx.AsyncClient() as client:
                for sid, limit in requests:
                    r = await client.get(
                        f"{base_url}/api/sessions/{sid}/events/history", params={"limit": limit}
                    )
                    out.append((r.status_code, r.content, r.headers.get("etag")))
            return out

        spliced = await answers()
        spliced_again = await answers()  # served from the page cache

        async def not_spliced(stream_id: str, n: int) -> TailArray:
            return await EventStore.tail_array(store, stream_id, n)

        store.tail_array = not_spliced
        per_row = await answers()
    assert spliced == spliced_again == per_row
    by_request = dict(zip(requests, spliced, strict=True))
    assert by_request[("nobody", 5)][0] == 404
    cut_page: dict[str, Any] = httpx.Response(200, content=by_request[("cut", 100)][1]).json()
    assert cut_page["archived_before"] == 5 and cut_page["start_index"] == 5
    assert cut_page["total"] == 12 and cut_page["returned"] == 8
