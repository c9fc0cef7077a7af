"""Health and metrics routes (CONTRACT §7.1, deployment guide "Verify")."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from pydantic import Field
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from spooled_backend.core.deps import State
from spooled_backend.core.errors import Unauthorized
from spooled_backend.core.openapi import METRICS, NONE, Out, doc
from spooled_backend.core.responses import JSONBody, json_response
from spooled_backend.core.state import AppState
from spooled_backend.observability.metrics import render

router = APIRouter(tags=["health"])


class Health(Out):
    status: str = Field(description="healthy | unhealthy")
    version: str
    database: bool
    cache: bool = Field(description="false without Redis (CONTRACT §21 R8)")
    uptime_seconds: int


class Liveness(Out):
    status: str


class Readiness(Out):
    status: str
    database: bool

CHECK_TIMEOUT_SECS = 2.0


async def database_ok(state: AppState) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECS):
            async with state.pool.acquire() as conn:
                return await conn.fetchval("SELECT 1") == 1
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return False


async def cache_ok(state: AppState) -> bool:
    """False when Redis is not configured or unreachable (the deployment guide's degraded mode)."""
    if state.redis is None:
        return False
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECS):
            return bool(await state.redis.ping())
    except Exception:  # noqa: BLE001
        return False


@router.get("/health", **doc(Health, errors=(503,), auth=NONE, rate_limited=False))
async def health(state: State) -> JSONBody:
    """`{status: healthy|unhealthy, version, database, cache, uptime_seconds}`; 503 when the
    database is down. `cache` is false in degraded mode (no Redis)."""
    db, cache = await asyncio.gather(database_ok(state), cache_ok(state))
    body = {
        "status": "healthy" if db else "unhealthy",
        "version": state.version,
        "database": db,
        "cache": cache,
        "uptime_seconds": int(time.time() - state.started_at.timestamp()),
    }
    return json_response(body, status=200 if db else 503)


@router.get("/health/live", **doc(Liveness, auth=NONE, rate_limited=False))
async def liveness() -> JSONBody:
    """200 while the process serves requests."""
    return json_response({"status": "alive"})


@router.get("/health/ready", **doc(Readiness, errors=(503,), auth=NONE, rate_limited=False))
async def readiness(state: State) -> JSONBody:
    """200 when the database answers, else 503."""
    db = await database_ok(state)
    return json_response({"status": "ready" if db else "not_ready", "database": db}, status=200 if db else 503)


def render_metrics(state: AppState) -> Response:
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/metrics",
    **doc(auth=METRICS, rate_limited=False, content_type="text/plain; version=0.0.4; charset=utf-8"),
)
async def metrics(request: Request, state: State) -> Response:
    """Prometheus text. With `METRICS_TOKEN` set, requires `Authorization: Bearer <token>` (401)."""
    token = state.settings.metrics_token
    if token and request.headers.get("authorization", "") != f"Bearer {token}":
        raise Unauthorized("Invalid or missing metrics token")
    return render_metrics(state)
