"""Composition root: builds the ASGI app; the lifespan owns the pool, Redis, event bus and loops."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from spooled_backend.admin.routes import router as admin_router
from spooled_backend.api_keys.routes import router as api_keys_router
from spooled_backend.auth.lifecycle import start_security
from spooled_backend.auth.routes import router as auth_router
from spooled_backend.billing.routes import router as billing_router
from spooled_backend.config import Settings
from spooled_backend.core import apidocs, handlers, openapi
from spooled_backend.core import middleware as http_middleware
from spooled_backend.core.state import AppState
from spooled_backend.dashboard.routes import router as dashboard_router
from spooled_backend.db.listener import Listener, listen_dsn
from spooled_backend.db.pool import create_pool
from spooled_backend.db.redis import redis_from_url
from spooled_backend.health.routes import router as health_router
from spooled_backend.jobs import coalesce, wakeup
from spooled_backend.jobs import queries as jobs_queries
from spooled_backend.jobs.routes import HOT_ROUTES as JOBS_HOT_ROUTES
from spooled_backend.jobs.routes import router as jobs_router
from spooled_backend.observability import metrics, tracing
from spooled_backend.observability.redaction import redact_url
from spooled_backend.organizations.routes import router as organizations_router
from spooled_backend.queues.routes import router as queues_router
from spooled_backend.realtime.bus import EventBus
from spooled_backend.realtime.routes import router as realtime_router
from spooled_backend.scheduler.loops import Supervisor, default_loops
from spooled_backend.schedules.routes import router as schedules_router
from spooled_backend.schedules.tasks import ScheduleFirer
from spooled_backend.webhooks.routes import router as webhooks_router
from spooled_backend.webhooks.tasks import Dispatcher as WebhookDispatcher
from spooled_backend.workers import counters as worker_counters
from spooled_backend.workers.routes import router as workers_router
from spooled_backend.workflows.routes import router as workflows_router

log = structlog.get_logger(__name__)

# One router per line: each domain adds or moves only its own line.
ROUTERS = [
    health_router,
    auth_router,
    organizations_router,
    api_keys_router,
    admin_router,
    billing_router,
    jobs_router,
    workers_router,
    queues_router,
    dashboard_router,
    schedules_router,
    workflows_router,
    webhooks_router,
    realtime_router,
]


def package_version() -> str:
    try:
        return version("spooled-backend")
    except PackageNotFoundError:
        return "0.0.0"


async def connect_redis(settings: Settings) -> Redis | None:
    """Redis when configured and reachable; otherwise None and the exact degraded-mode message."""
    if not settings.redis_url:
        log.warning("Redis unavailable, running without cache", reason="REDIS_URL is not set")
        return None
    client: Redis = redis_from_url(  # plain, redis+sentinel:// or redis+cluster:// (db/redis.py)
        settings.redis_url, max_connections=settings.redis_pool_size, socket_connect_timeout=2
    )
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means degraded mode
        log.warning("Redis unavailable, running without cache",
                    reason=f"cannot reach {redact_url(settings.redis_url)}", error=str(exc))
        await client.aclose()
        return None
    return client


def tune_gc() -> None:
    """Fewer, cheaper garbage collections on the request path (issue 8 profile); called by
    `serve` in each server process once the app is built (not by tests' in-process apps).

    Everything allocated while starting (modules, the app, pools) is moved out of the
    collector's reach (`gc.freeze`), and the youngest generation is collected every 20,000
    allocations instead of 700: a request allocates a few hundred short-lived objects (most
    freed by reference counting), and the default threshold ran a collection every couple of
    requests, each also walking older generations now and then."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


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
        state.acks, state.creates = coalesce.for_acks(state), coalesce.for_creates(state)
        await state.one_trip.install(pool, jobs_queries.ONE_TRIP)
        state.listener = Listener(listen_dsn(database_url, settings.database_direct_url))
        await state.listener.start()
        await state.listener.subscribe(wakeup.CHANNEL, state.claim_wakeups.on_notify)
        state.listener.on_reconnect(state.claim_wakeups.wake_all)
        await state.events.start(pool, state.listener)  # realtime bus: Redis or NOTIFY fan-out
        await start_security(state)
        app.state.services = state
        metrics.track_pool(pool)
        if settings.database_read_url:
            state.read_pool = await create_pool(settings.database_read_url, settings)
        supervisor = Supervisor(pool, default_loops(state))
        schedule_firer = ScheduleFirer(state)  # cron schedules: wakes at the due time
        state.webhooks = WebhookDispatcher(pool, settings)
        if run_loops:
            supervisor.start()
            await schedule_firer.start()
            await state.webhooks.start(getattr(state, "listener", None))
        counters_stop = asyncio.Event()  # worker job counters, batched per process
        counters_task = asyncio.create_task(worker_counters.run_flusher(pool, counters_stop))
        try:
            yield
        finally:
            await state.webhooks.stop()
            await schedule_firer.stop()
            await supervisor.stop()
            await state.events.drain()
            counters_stop.set()
            await counters_task
            state.claim_wakeups.close()
            await state.listener.stop()
            if redis is not None:
                await redis.aclose()
            if state.read_pool is not None:
                await state.read_pool.close()
            await pool.close()

    app = FastAPI(
        title="Spooled backend",
        version=package_version(),
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # offline Swagger UI / ReDoc from core/apidocs.py
        redoc_url=None,
        openapi_url="/openapi.json",
        # FastAPI's own OpenTelemetry hooks off: server spans come from tracing.asgi_middleware
        # (OTel's ASGI middleware) when tracing is configured, and with them on FastAPI looked
        # up three OTel providers on every request (~4 % of a create's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    openapi.install(app)
    app.include_router(apidocs.docs_router(app.title))
    metrics.configure(settings.metrics_organization_label, settings.metrics_max_queue_labels)
    tracing.configure_tracing(settings.otel_exporter_otlp_endpoint, settings.otel_service_name,
                              package_version())
    handlers.install(app)
    http_middleware.install(app, settings, hot_routes=JOBS_HOT_ROUTES)
    for router in ROUTERS:
        app.include_router(router)
    if (otel := tracing.asgi_middleware()) is not None:
        app.add_middleware(otel[0], **otel[1])  # outermost: the server span covers everything
    return app


def app_from_env() -> FastAPI:
    """The app of one `serve --workers N` process (uvicorn factory): settings from the
    environment the parent prepared (cli._share_with_workers)."""
    import os

    from spooled_backend.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.json_logs, settings.rust_log)
    assert settings.database_url is not None, "serve sets DATABASE_URL for its workers"
    application = create_app(settings, settings.database_url,
                             run_loops=os.environ.get("SPOOLED_RUN_LOOPS", "1") == "1")
    tune_gc()
    return application
