"""One supervisor for every background loop: nothing dies silently, everything says how it is.

The scheduler, the projection follower, the checkpointer, node liveness and the
SSE hub each run one loop for the life of the process. A bare `create_task`
loop that raises is gone without a word (issue 12: one bad trigger value stopped
every timer while /api/health said ok). Under the supervisor an unexpected
exception is logged with its traceback, the component is marked `down` and
restarted after a capped exponential backoff (0.1 s, 0.2 s, ... up to its cap),
and it reads `degraded` until it has run for `stable_seconds` without failing, when
its backoff starts from the beginning again. `StoreUnavailable` (disk full, I/O
error) is an incident, not a bug: it goes to `StoreIncidents` (one log line per
incident) instead of a traceback per retry, and the backoff applies the same way.

`spawn` returns the supervising task; its owner stops it with `stop_task` as
before, so a stop still cannot be swallowed by a racing cancel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from api.core.incidents import StoreIncidents
from eventstore import StoreUnavailable

log = logging.getLogger("hivelog.supervisor")

Probe = Callable[[], str | None]  # why a running component is degraded, or None


@dataclass(frozen=True)
class RestartPolicy:
    initial_seconds: float = 0.1
    factor: float = 2.0
    max_seconds: float = 30.0
    stable_seconds: float = 60.0  # this long without failing resets the backoff

    def delay(self, consecutive_failures: int) -> float:
        step = self.initial_seconds * self.factor ** max(0, consecutive_failures - 1)
        return min(step, self.max_seconds)


@dataclass
class Component:
    """What the supervisor knows about one loop (all times are monotonic seconds)."""

    name: str
    required: bool
    policy: RestartPolicy
    probe: Probe | None
    running: bool = False
    stopped: bool = False
    started_at: float = 0.0
    consecutive: int = 0  # failures since the last stable run
    restarts: int = 0
    last_error: str | None = None
    restart_at: float | None = None  # while down: when the next attempt starts

    def report(self) -> dict[str, object]:
        """`{"status": "ok"|"degraded"|"down", "reason": str|None, "restarts": n, ...}`."""
        now = time.monotonic()
        status, reason = "ok", None
        if self.stopped:
            status, reason = "down", "stopped"
        elif not self.running:
            wait = max(0.0, (self.restart_at or now) - now)
            status, reason = "down", f"failed: {self.last_error}; restarting in {wait:.1f} s"
        elif self.consecutive and now - self.started_at < self.policy.stable_seconds:
            status = "degraded"
            reason = f"restarted after failing {self.consecutive}x; last: {self.last_error}"
        else:
            probed = self.probe() if self.probe is not None else None
            if probed is not None:
                status, reason = "degraded", probed
        body: dict[str, object] = {"status": status, "reason": reason, "restarts": self.restarts}
        if self.last_error is not None:
            body["last_error"] = self.last_error
        if self.required:
            body["required"] = True
        return body


class Supervisor:
    """Runs loops, restarts them with backoff, reports their state; see the module docstring."""

    def __init__(
        self, policy: RestartPolicy | None = None, incidents: StoreIncidents | None = None
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.incidents = incidents or StoreIncidents()
        self.components: dict[str, Component] = {}

    def spawn(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        required: bool = False,
        policy: RestartPolicy | None = None,
        probe: Probe | None = None,
    ) -> asyncio.Task[None]:
        """Run `run()` under supervision (`policy`: this component's own backoff);
        a normal return ends it (state `stopped`)."""
        component = Component(name, required, policy or self.policy, probe)
        self.components[name] = component
        return asyncio.create_task(self._supervise(component, run), name=name)

    async def _supervise(self, component: Component, run: Callable[[], Awaitable[None]]) -> None:
        try:
            while True:
                component.running = True
                component.restart_at = None
                component.started_at = time.monotonic()
                try:
                    await run()
                    return
                except Exception as exc:
                    policy = component.policy
                    if time.monotonic() - component.started_at >= policy.stable_seconds:
                        component.consecutive = 0  # it had recovered: start the backoff over
                    component.consecutive += 1
                    component.running = False
                    component.last_error = f"{type(exc).__name__}: {exc}"
                    delay = policy.delay(component.consecutive)
                    component.restart_at = time.monotonic() + delay
                    if isinstance(exc, StoreUnavailable):
                        self.incidents.refused_write(exc)
                    else:
                        log.exception(
                            "%s failed (%d in a row); restarting in %.1f s",
                            component.name,
                            component.consecutive,
                            delay,
                        )
                await asyncio.sleep(delay)
                component.restarts += 1
        finally:
            component.running = False
            component.stopped = True

    def report(self) -> dict[str, dict[str, object]]:
        return {name: c.report() for name, c in sorted(self.components.items())}

    def required_down(self) -> list[str]:
        """Required components that are down right now (health answers 503)."""
        return [
            name
            for name, c in self.components.items()
            if c.required and c.report()["status"] == "down"
        ]
