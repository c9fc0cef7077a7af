"""Worker registration and liveness (CONTRACT §7.9, §9.2)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import AlreadyExists, NotFound
from spooled_backend.scheduler import recovery
from spooled_backend.workers import queries as q
from spooled_backend.workers.schemas import RegisterWorker

SELF_REPORTED = ("healthy", "degraded", "draining")


async def register_worker(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, body: RegisterWorker
) -> dict[str, Any]:
    """Upsert by `worker_id` (generated when absent) → `{id, queue_name, lease_duration_secs,
    heartbeat_interval_secs}`. 403 queue scope; 409 when another organization owns the id."""
    auth.require_queue(body.queue_name)
    worker_id = body.worker_id or str(uuid.uuid4())
    row = await conn.fetchrow(
        q.UPSERT_WORKER,
        worker_id,
        auth.organization_id,
        body.queue_name,
        body.hostname,
        body.worker_type,
        body.max_concurrency,
        body.metadata or {},
        body.version,
    )
    if row is None:
        raise AlreadyExists("Worker ID already in use")
    return {
        "id": row["id"],
        "queue_name": row["queue_name"],
        "lease_duration_secs": settings.worker_lease_duration_secs,
        "heartbeat_interval_secs": max(1, settings.worker_heartbeat_interval_secs),
    }


def _visible(auth: AuthContext, row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None or not all(auth.can_access_queue(n) for n in (row["queue_names"] or [row["queue_name"]])):
        raise NotFound("Worker not found")
    return row


async def get_worker(conn: asyncpg.Connection, auth: AuthContext, worker_id: str) -> dict[str, Any]:
    return dict(_visible(auth, await conn.fetchrow(q.GET_WORKER, worker_id, auth.organization_id)))


async def list_workers(conn: asyncpg.Connection, auth: AuthContext) -> list[dict[str, Any]]:
    """Newest heartbeat first, at most 100; scoped keys see workers whose queues are in scope."""
    rows = await conn.fetch(q.LIST_WORKERS, auth.organization_id, auth.scope_filter)
    keys = ("id", "queue_name", "hostname", "status", "current_jobs", "max_concurrency",
            "last_heartbeat", "jobs_processed", "jobs_failed")
    return [{k: r[k] for k in keys} for r in rows]


async def heartbeat_worker(
    conn: asyncpg.Connection,
    auth: AuthContext,
    worker_id: str,
    current_jobs: int,
    status: str | None,
    metadata: dict[str, Any] | None,
) -> None:
    """Record liveness; unknown statuses are coerced to healthy (CONTRACT §9.2). 404 unknown."""
    reported = status if status in SELF_REPORTED else "healthy"
    _visible(auth, await conn.fetchrow(q.GET_WORKER, worker_id, auth.organization_id))
    await conn.execute(q.HEARTBEAT, worker_id, auth.organization_id, current_jobs, reported, metadata)


async def deregister_worker(conn: asyncpg.Connection, auth: AuthContext, worker_id: str) -> None:
    """Mark offline and release only this worker's jobs whose leases already expired
    (CONTRACT §7.9 / §19 #12: live leases stay so the SDK's drain can still ack them). Idempotent."""
    async with conn.transaction():
        row = await conn.fetchrow(q.DEREGISTER, worker_id, auth.organization_id)
        if row is None:
            raise NotFound("Worker not found")
        await recovery.recover_expired_leases(conn, worker_id=worker_id)
