"""The parts the composition root built, handed to routes as one typed object.

Routes read `parts(request).sessions` and so on; nothing probes `app.state` for
optional attributes, and a missing part is a wiring bug that fails at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from api.core.clock import Clock
from api.core.nodes import NodeLiveness
from api.core.scheduler import Scheduler
from api.core.service import SessionService
from api.core.settings import Settings
from api.core.subscriptions import SubscriptionService
from api.core.supervisor import Supervisor
from eventstore import EventStore

if TYPE_CHECKING:
    from api.http.metrics import Metrics
    from api.http.sse import Hub


@dataclass(frozen=True)
class Parts:
    settings: Settings
    store: EventStore
    clock: Clock
    sessions: SessionService
    node: NodeLiveness
    scheduler: Scheduler
    hub: Hub
    metrics: Metrics
    subscriptions: SubscriptionService
    supervisor: Supervisor


def parts(request: Request) -> Parts:
    value: Parts = request.app.state.parts
    return value
