"""Job sweeps shared by the loops and by worker deregistration (CONTRACT §8.2, §15)."""

from __future__ import annotations

import asyncpg

from spooled_backend.core.events import Events, NoEvents
from spooled_backend.jobs import dependencies
from spooled_backend.observability import metrics
from spooled_backend.scheduler import queries as q

BATCH = 1000
LEASE_RETRY_REASON = "Lease expired (worker timeout)"
LEASE_EXHAUSTED_REASON = "Max retries exceeded after lease expiration"


async def activate_scheduled(conn: asyncpg.Connection, events: Events | None = None) -> int:
    """Move due `scheduled` jobs to `pending`; returns how many."""
    sink = events or NoEvents()
    rows = await conn.fetch(q.ACTIVATE_SCHEDULED, BATCH)
    for r in rows:
        sink.job_status(r["organization_id"], r["id"], r["queue_name"], "scheduled", "pending")
    return len(rows)


async def recover_expired_leases(
    conn: asyncpg.Connection, events: Events | None = None, worker_id: str | None = None
) -> int:
    """Expired leases (`lease_expires_at <= now`) → pending with backoff, or deadletter when
    retries are exhausted (+ audit row). Limited to `worker_id` when given. Returns the count."""
    sink = events or NoEvents()
    rows = await conn.fetch(
        q.RECOVER_EXPIRED_LEASES, BATCH, worker_id, LEASE_RETRY_REASON, LEASE_EXHAUSTED_REASON
    )
    for r in rows:
        if r["status"] == "deadletter":
            metrics.JOBS_DEADLETTERED.inc(queue=r["queue_name"], organization=r["organization_id"])
        sink.job_failed(
            r["organization_id"], r["id"], r["queue_name"], r["last_error"], r["retry_count"], r["status"]
        )
    if rows:
        dependencies.emit(sink, rows[0]["settled"])
    return len(rows)


async def expire_jobs(conn: asyncpg.Connection, events: Events | None = None) -> int:
    """pending/scheduled jobs past `expires_at` → cancelled (history `expired`)."""
    sink = events or NoEvents()
    rows = await conn.fetch(q.EXPIRE_JOBS, BATCH)
    for r in rows:
        sink.job_status(r["organization_id"], r["id"], r["queue_name"], "pending", "cancelled")
    if rows:
        dependencies.emit(sink, rows[0]["settled"])
    return len(rows)


async def refresh_gauges(conn: asyncpg.Connection) -> None:
    """Recompute the queue and worker gauges of CONTRACT §16 (per queue and organization)."""
    rows = await conn.fetch(q.QUEUE_GAUGES)
    metrics.JOBS_PENDING.replace({(r["queue_name"], r["organization_id"]): r["pending"] for r in rows})
    metrics.JOBS_PROCESSING.replace(
        {(r["queue_name"], r["organization_id"]): r["processing"] for r in rows}
    )
    metrics.JOB_MAX_AGE.replace(
        {(r["queue_name"], r["organization_id"]): float(r["max_age"]) for r in rows}
    )
    workers = await conn.fetchrow(q.WORKER_GAUGES)
    metrics.WORKERS_ACTIVE.set(workers["active"])
    metrics.WORKERS_HEALTHY.set(workers["healthy"])
