"""The Starlette application, assembled from feature modules.

Each module in FEATURES may define:
  - `routes`: a list of Starlette routes;
  - `lifespan(app)`: an async context manager run at start-up (in FEATURES order,
    after the store is open and before requests are served) and exited in reverse;
  - `middleware`: a list of starlette `Middleware` (applied outermost first).
A feature module that does not exist yet is skipped, so features land independently.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from types import ModuleType

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from api.settings import Settings
from eventstore import open_store

# Order matters: routes match first-come (e.g. /api/sessions/history before
# /api/sessions/{id}); lifespans start in this order (sessions before triggers).
FEATURES = [
    "api.health",
    "api.middleware",
    "api.metrics",
    "api.nodes",
    "api.sessions",
    "api.agents",
    "api.triggers",
    "api.webhooks",
    "api.history",
    "api.sse",
    "api.openapi",
]


def load_features(names: list[str]) -> list[ModuleType]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def create_app(settings: Settings) -> Starlette:
    features = load_features(FEATURES)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await open_store(settings.db_url)
        app.state.store = store
        app.state.settings = settings
        try:
            async with contextlib.AsyncExitStack() as stack:
                for feature in features:
                    feature_lifespan = getattr(feature, "lifespan", None)
                    if feature_lifespan is not None:
                        await stack.enter_async_context(feature_lifespan(app))
                yield
        finally:
            await store.close()

    routes: list[BaseRoute] = []
    middleware: list[Middleware] = []
    for feature in features:
        routes.extend(getattr(feature, "routes", []))
        middleware.extend(getattr(feature, "middleware", []))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
