"""The Starlette application: the store opened in the lifespan, routes from each module."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from api import health
from api.settings import Settings
from eventstore import open_store


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await open_store(settings.db_url)
        app.state.store = store
        app.state.settings = settings
        try:
            yield
        finally:
            await store.close()

    routes: list[BaseRoute] = [*health.routes]
    return Starlette(routes=routes, lifespan=lifespan)
