"""Domain errors: a decider's refusal, carried to HTTP as hive's `{"error": ...}` body."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A command refused by a pure decider; nothing is appended.

    `status_code` is hive's status for the case, `message` its `error` text, and
    `extra` any further body fields (e.g. `valid` for a bad phase).
    """

    def __init__(self, status_code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.extra: dict[str, Any] = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


def session_not_found(session_id: str) -> DomainError:
    return DomainError(404, f"Session '{session_id}' not found")
