"""Domain errors: a decider's refusal, with hive's `error` text and no HTTP status.

The kind of refusal is the class; the HTTP layer maps each class to a status in
one place (`api.http.errors`). Nothing has been appended when one is raised.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A command refused; `message` is hive's `error` text, `extra` any further
    body fields (e.g. `valid` for a bad phase)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, Any] = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


class Invalid(DomainError):
    """The command's input breaks a rule."""


class NotFound(DomainError):
    """The command names something that does not exist (or was erased)."""


class Conflict(DomainError):
    """The command clashes with the current state."""


class Forbidden(DomainError):
    """The command is never allowed on this target."""


def session_not_found(session_id: str) -> DomainError:
    return NotFound(f"Session '{session_id}' not found")
