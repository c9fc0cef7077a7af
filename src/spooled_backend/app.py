"""Composition root: builds the ASGI app; the lifespan owns the pool, Redis, event bus and loops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from spooled_backend.config import Settings
from spooled_backend.core import handlers
from spooled_backend.core.middleware import RequestContextMiddleware
from spooled_backend.core.state import AppState
from spooled_backend.db.pool import create_pool
from spooled_backend.health.routes import router as health_router
from spooled_backend.jobs.routes import router as jobs_router
from spooled_backend.organizations.routes import router as organizations_router
from spooled_backend.realtime.bus import EventBus
from spooled_backend.scheduler.loops import Supervisor, default_loops
from spooled_backend.workers.routes import router as workers_router

log = structlog.get_logger(__name__)

ROUTERS = [health_router, organizations_router, jobs_router, workers_router]


def package_version() -> str:
    try:
        return version("spooled-backend")
    except PackageNotFoundError:
        return "0.0.0"


async def connect_redis(settings: Settings) -> Redis | None:
    """Redis when configured and reachable; otherwise None and the exact degraded-mode message."""
    if not settings.redis_url:
        log.warning("Redis unavailable, running without cache")
        return None
    client: Redis = Redis.from_url(
        settings.redis_url, max_connections=settings.redis_pool_size, socket_connect_timeout=2
    )
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means degraded mode
        log.warning("Redis unavailable, running without cache", error=str(exc))
        await client.aclose()
        return None
    return client


def create_app(settings: Settings, database_url: str, *, run_loops: bool = True) -> FastAPI:
    """The REST app. `database_url` is the resolved DSN (embedded or DATABASE_URL)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(database_url, settings)
        redis = await connect_redis(settings)
        state = AppState(
            settings=settings, pool=pool, redis=redis, events=EventBus(redis),
            version=package_version(),
        )
        app.state.services = state
        supervisor = Supervisor(pool, default_loops(state))
        if run_loops:
            supervisor.start()
        try:
            yield
        finally:
            await supervisor.stop()
            await state.events.drain()
            if redis is not None:
                await redis.aclose()
            await pool.close()

    app = FastAPI(
        title="Spooled backend",
        version=package_version(),
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    handlers.install(app)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    return app
