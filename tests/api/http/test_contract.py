"""Typed request bodies refuse in hive's words, and ignore unknown keys."""

from __future__ import annotations

import pytest

from api.http.agents import AgentMetadata
from api.http.body import RequestError
from api.http.contract import decode_model
from api.http.sessions import CreateSession, LoadColony
from api.http.triggers import UpdateTrigger


@pytest.mark.parametrize(
    ("model", "raw", "message"),
    [
        (CreateSession, b"[1]", "Request body must be a JSON object"),
        (CreateSession, b"{not json", "Invalid JSON body"),
        (CreateSession, b'{"agent_path": 7}', "'agent_path' must be a string"),
        (CreateSession, b'{"queen_name": []}', "'queen_name' must be a string"),
        (LoadColony, b'{"colony_id": 1}', "'colony_id' must be a string"),
        (UpdateTrigger, b'{"task": 5}', "'task' must be a string"),
        (UpdateTrigger, b'{"task": null}', "'task' must be a string"),
        (UpdateTrigger, b'{"trigger_config": []}', "'trigger_config' must be an object"),
        (AgentMetadata, b'{"icon": 5}', "'icon' must be a string or null"),
    ],
)
def test_refusals_in_hives_words(model: type, raw: bytes, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        decode_model(raw, model)
    assert (refused.value.status_code, refused.value.message) == (400, message)


def test_null_means_not_given_where_the_default_is_none() -> None:
    assert decode_model(b'{"trigger_config": null}', UpdateTrigger).trigger_config is None
    assert decode_model(b'{"icon": null}', AgentMetadata).icon is None


def test_unknown_keys_are_ignored() -> None:
    body = decode_model(b'{"agent_path": "/x", "newer_frontend_key": {"a": [1]}}', LoadColony)
    assert body.agent_path == "/x"
