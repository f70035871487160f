"""Service settings: built from CLI flags and environment variables, then frozen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    db_url: str

    @classmethod
    def from_env(cls, *, db_url: str) -> Settings:
        return cls(db_url=db_url)
