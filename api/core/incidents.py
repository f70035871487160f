"""Store outages as incidents: one log line when writes start failing, one when they work again.

A full disk or a failing device makes every append fail the same way; logging a
traceback per request (or per timer) would bury the cause and eat the space that
is left. An incident runs from the first refused write (`StoreUnavailable`) to the
next successful commit, which the store's commit hook reports.
"""

from __future__ import annotations

import logging
import time

from eventstore import StoreUnavailable

log = logging.getLogger("hivelog.store")

RETRY_AFTER_SECONDS = 5  # what a refused client is told to wait (HTTP Retry-After)


class StoreIncidents:
    """Whether writes are failing right now, since when and why; logs once per incident."""

    def __init__(self) -> None:
        self.since: float | None = None  # epoch seconds of the first refusal, None: healthy
        self.reason: str | None = None
        self.refused = 0  # writes refused in the current incident
        self.incidents = 0  # incidents since start

    @property
    def active(self) -> bool:
        return self.since is not None

    def refused_write(self, exc: StoreUnavailable) -> None:
        """Count a refused write; the first of an incident is logged."""
        self.refused += 1
        if self.since is None:
            self.since = time.time()
            self.reason = str(exc)
            self.incidents += 1
            log.error(
                "store unavailable (%s): writes answer 503 until one succeeds; "
                "further failures in this incident are not logged",
                exc,
            )

    def on_commit(self, _appends: int, _seconds: float) -> None:
        """The store's commit hook: a commit went through, so the incident is over."""
        self.recovered()

    def recovered(self) -> None:
        """A write went through (a commit, or a lease renewed): the incident is over.
        Lease renewals count, so an idle server does not stay "degraded" until the next
        append after the store came back."""
        if self.since is not None:
            log.warning(
                "store available again after %.1f s; %d writes were refused",
                time.time() - self.since,
                self.refused,
            )
            self.since = None
            self.reason = None
            self.refused = 0
