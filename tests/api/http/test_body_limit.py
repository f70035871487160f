"""The body cap (413) is checked in one place, the middleware, and holds for every
route on a real server: JSON bodies and webhook hits, declared or streamed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tests.support.sessions_support import client, head, make_colony, make_env

OPEN_HOOK = {
    "id": "open",
    "name": "open",
    "trigger_type": "webhook",
    "trigger_config": {"path": "/big", "methods": ["POST"]},
    "task": "t",
}
LIMIT = 1024 * 1024


def chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * 65536
        sent += 65536


def test_oversized_bodies_are_413_and_append_nothing(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    colony = make_colony(env.root, "hooks", triggers=[OPEN_HOOK])
    server = env.start()
    try:
        with client(server) as c:
            r = c.post("/api/sessions", json={"agent_path": str(colony)})
            assert r.status_code == 201, r.text
            small = c.post("/api/webhooks/big", content=b"{}")
            assert small.status_code == 202, small.text  # the hook is live
            before = head(c)
            json_headers = {"content-type": "application/json"}
            for url in ("/api/sessions", "/api/webhooks/big"):
                declared = c.post(url, content=b" " * (LIMIT + 1), headers=json_headers)
                assert declared.status_code == 413, (url, declared.text)
                assert declared.json() == {"error": f"Request body larger than {LIMIT} bytes"}
                streamed = c.post(url, content=chunks(2 * LIMIT), headers=json_headers)
                assert streamed.status_code == 413, (url, streamed.text)
                assert head(c) == before, url
            # Within the HTTP cap but too big for one event with its headers: still a
            # 413 (it was a 500), and nothing appended.
            exact = c.post("/api/webhooks/big", content=b" " * LIMIT)
            assert exact.status_code == 413, exact.text
            assert exact.json()["error"].startswith("Webhook too large to record")
            assert head(c) == before
    finally:
        server.stop()


def test_body_reader_has_no_limit_of_its_own() -> None:
    """One place checks the size: the body helpers take no limit."""
    import inspect

    from api.http import body, contract

    assert "limit" not in inspect.signature(body.read_body).parameters
    assert "limit" not in inspect.signature(contract.read_model).parameters
