"""The ASGI application: `app.main:app`. Routers are mounted here, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.auth.views import router as tokens_router
from app.branches.views import router as branches_router
from app.core.clock import Clock, SystemClock
from app.core.database import create_engine, create_sessionmaker
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.logging import AccessLogMiddleware, configure_logging
from app.core.settings import Settings, get_settings
from app.counters.views import router as counters_router
from app.queue.views import router as queue_router
from app.tickets.views import router as tickets_router


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="hallq",
        version="1.0.0",
        summary="Queue and ticketing for customer service halls",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    install_error_handlers(app)
    app.add_middleware(AccessLogMiddleware)

    app.include_router(health_router)
    app.include_router(tokens_router)
    app.include_router(branches_router)
    app.include_router(tickets_router)
    app.include_router(counters_router)
    app.include_router(queue_router)
    return app


app = create_app()
