"""The dashboard document (CONTRACT §7.15): every aggregate is restricted to the caller's
organization and queue scope. Imports no web framework; Redis is reached only through the
health probe the route passes in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from spooled_backend.core.context import AuthContext
from spooled_backend.dashboard import queries as q


def _status(ok: bool) -> str:
    return "healthy" if ok else "unhealthy"


async def dashboard(
    conn: asyncpg.Connection,
    auth: AuthContext,
    *,
    version: str,
    started_at: datetime,
    environment: str,
    cache_ok: Callable[[], Awaitable[bool]],
) -> dict[str, Any]:
    """`{system: {version, uptime_seconds, started_at, database_status, cache_status,
    environment}, jobs: {total, pending, processing, completed_24h, failed_24h, deadletter,
    avg_wait_time_ms, avg_processing_time_ms}, queues: [{name, pending, processing, paused}],
    workers: {total, healthy, unhealthy}, recent_activity: {jobs_created_1h, jobs_completed_1h,
    jobs_failed_1h}}`.

    Units: `uptime_seconds` int seconds; `avg_*_ms` float milliseconds over the last 24 h (null
    without samples): wait = first claim − creation, processing = completion − first claim.
    `failed_24h` / `jobs_failed_1h` count failed + deadletter jobs updated in that window.
    `queues` lists the queues GET /queues shows (by name, at most 100) with live counts and
    `paused` = not enabled. Workers: `total` = not offline, `unhealthy` = total − healthy
    (degraded or draining).
    `database_status` is `healthy` (this document was read from it); `cache_status` is
    `healthy` when Redis answers or is not configured (CONTRACT §7.15).
    """
    scope = auth.scope_filter
    org = auth.organization_id
    jobs = await conn.fetchrow(q.JOB_TOTALS, org, scope)
    queues = await conn.fetch(q.QUEUES, org, scope)
    workers = await conn.fetchrow(q.WORKERS, org, scope)
    now = datetime.now(UTC)
    return {
        "system": {
            "version": version,
            "uptime_seconds": max(0, int((now - started_at).total_seconds())),
            "started_at": started_at,
            "database_status": "healthy",
            "cache_status": _status(await cache_ok()),
            "environment": environment,
        },
        "jobs": {
            key: jobs[key]
            for key in (
                "total",
                "pending",
                "processing",
                "completed_24h",
                "failed_24h",
                "deadletter",
                "avg_wait_time_ms",
                "avg_processing_time_ms",
            )
        },
        "queues": [dict(r) for r in queues],
        "workers": {
            "total": workers["total"],
            "healthy": workers["healthy"],
            "unhealthy": workers["total"] - workers["healthy"],
        },
        "recent_activity": {
            key: jobs[key] for key in ("jobs_created_1h", "jobs_completed_1h", "jobs_failed_1h")
        },
    }
