"""Service settings: built once from CLI flags and environment variables, then frozen."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_SECONDS = 30.0  # a request body must arrive in full within this (else 408)


def hive_home() -> Path:
    return Path(os.environ.get("HIVE_HOME", "~/.hive")).expanduser()


def default_agents_roots() -> tuple[Path, ...]:
    """hive's roots under HIVE_HOME (its repo-relative exports/ and examples/ do not apply)."""
    home = hive_home()
    return (home / "colonies", home / "agents")


@dataclass(frozen=True)
class Settings:
    db_url: str
    agents_roots: tuple[Path, ...] = field(default_factory=default_agents_roots)
    token: str | None = None  # when set, /api/* needs X-Hive-Token
    # Stable by default, so a restarted node takes its liveness lease (and its sessions'
    # timers) straight back; several processes on one host need distinct --node-id.
    node_id: str = field(default_factory=socket.gethostname)
    max_body_bytes: int = MAX_BODY_BYTES
    node_ttl: float = 10.0  # seconds a node's liveness lease lasts without renewal
    body_timeout: float = BODY_TIMEOUT_SECONDS

    @classmethod
    def from_env(
        cls,
        *,
        db_url: str,
        agents_roots: list[str] | None = None,
        token: str | None = None,
        node_id: str | None = None,
    ) -> Settings:
        """Flags win over the environment: HIVELOG_AGENTS_ROOTS (os.pathsep-separated),
        HIVELOG_TOKEN (or hive's HIVE_DESKTOP_TOKEN), HIVELOG_NODE_ID, HIVELOG_NODE_TTL."""
        roots_text = os.environ.get("HIVELOG_AGENTS_ROOTS", "")
        roots = agents_roots or [r for r in roots_text.split(os.pathsep) if r]
        resolved = (
            tuple(Path(r).expanduser().resolve() for r in roots)
            if roots
            else tuple(p.resolve() for p in default_agents_roots())
        )
        token = token or os.environ.get("HIVELOG_TOKEN") or os.environ.get("HIVE_DESKTOP_TOKEN")
        kwargs: dict[str, object] = {}
        node = node_id or os.environ.get("HIVELOG_NODE_ID")
        if node:
            kwargs["node_id"] = node
        ttl = os.environ.get("HIVELOG_NODE_TTL")
        if ttl:
            kwargs["node_ttl"] = float(ttl)
        return cls(db_url=db_url, agents_roots=resolved, token=token or None, **kwargs)  # type: ignore[arg-type]
