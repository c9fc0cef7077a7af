"""Worker registration and liveness (CONTRACT §7.9, §9.2).

Functions take an asyncpg connection inside the request's transaction; no web framework.
Reads of workers outside a scoped key's queues answer 404; registering for an out-of-scope
queue answers 403.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import AlreadyExists, NotFound
from spooled_backend.core.events import Events
from spooled_backend.core.validators import WORKER_ID_RE
from spooled_backend.organizations import quotas
from spooled_backend.workers import queries as q
from spooled_backend.workers.liveness import release_worker_jobs
from spooled_backend.workers.schemas import RegisterWorker

SELF_REPORTED = ("healthy", "degraded", "draining")
COUNTED = ("healthy", "degraded")  # statuses charged to max_workers (CONTRACT §9.2)
SUMMARY_KEYS = (
    "id",
    "queue_name",
    "hostname",
    "status",
    "current_jobs",
    "max_concurrency",
    "last_heartbeat",
    "jobs_processed",
    "jobs_failed",
    "max_concurrent_jobs",  # raw names too (CONTRACT §21 R5)
    "current_job_count",
    "registered_at",
    "created_at",
)


def _known_id(worker_id: str) -> str:
    """Path ids that could never have been registered cannot exist: 404 before any SQL."""
    if not WORKER_ID_RE.match(worker_id):
        raise NotFound("Worker not found")
    return worker_id


async def register_worker(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, body: RegisterWorker,
    events: Events | None = None,
) -> dict[str, Any]:
    """Upsert by `worker_id` (a UUID is generated when absent) → `{id, queue_name,
    lease_duration_secs, heartbeat_interval_secs}` (seconds; the interval is ≥ 1).

    A new id, or one of ours that is offline/draining, is charged to `max_workers`
    (429 QUOTA_EXCEEDED); re-registering one of our healthy/degraded ids is free.
    403 queue out of scope; 409 "Worker ID already in use" when another organization owns it.
    """
    auth.require_queue(body.queue_name)
    worker_id = body.worker_id or str(uuid.uuid4())
    async with conn.transaction():
        owner = await conn.fetchrow(q.WORKER_OWNER, worker_id)
        if owner is not None and owner["organization_id"] != auth.organization_id:
            raise AlreadyExists("Worker ID already in use")
        if owner is None or owner["status"] not in COUNTED:
            await quotas.reserve(conn, settings, auth, "workers")
        # Under row-level security another organization's row is invisible above; the
        # upsert's ownership condition then leaves it alone and returns no row (→ 409).
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
    if events is not None:
        events.worker_registered(auth.organization_id, row["id"], row["queue_name"])
    return {
        "id": row["id"],
        "queue_name": row["queue_name"],
        "lease_duration_secs": settings.worker_lease_duration_secs,
        "heartbeat_interval_secs": max(1, settings.worker_heartbeat_interval_secs),
    }


async def get_worker(conn: asyncpg.Connection, auth: AuthContext, worker_id: str) -> dict[str, Any]:
    """The Worker object (public names `max_concurrency`, `current_jobs`, `registered_at`, plus
    `jobs_processed`/`jobs_failed`). 404 unknown, other organization's, or out of scope."""
    row = await conn.fetchrow(
        q.GET_WORKER, _known_id(worker_id), auth.organization_id, auth.scope_filter
    )
    if row is None:
        raise NotFound("Worker not found")
    return dict(row)


async def list_workers(conn: asyncpg.Connection, auth: AuthContext) -> list[dict[str, Any]]:
    """`[WorkerSummary]`: newest heartbeat first, at most 100; scoped keys see the workers
    whose queues are all in scope."""
    rows = await conn.fetch(q.LIST_WORKERS, auth.organization_id, auth.scope_filter)
    return [{k: r[k] for k in SUMMARY_KEYS} for r in rows]


async def heartbeat_worker(
    conn: asyncpg.Connection,
    auth: AuthContext,
    worker_id: str,
    current_jobs: int,
    status: str | None,
    metadata: dict[str, Any] | None,
    events: Events | None = None,
) -> None:
    """Record liveness: `last_heartbeat = now`, `current_jobs`, status, metadata (replaced when
    given). Self-reported healthy/degraded/draining are applied; anything else (offline,
    unknown, absent) counts as healthy except that a draining worker stays draining
    (CONTRACT §9.2). A worker marked degraded/offline by the liveness sweep comes back.
    404 unknown or out of scope."""
    reported = status if status in SELF_REPORTED else None
    status_now = await conn.fetchval(
        q.HEARTBEAT,
        _known_id(worker_id),
        auth.organization_id,
        auth.scope_filter,
        current_jobs,
        reported,
        metadata,
    )
    if status_now is None:
        raise NotFound("Worker not found")
    if events is not None:
        events.worker_heartbeat(auth.organization_id, worker_id, status_now)


async def deregister_worker(
    conn: asyncpg.Connection, auth: AuthContext, worker_id: str, events: Events | None = None
) -> None:
    """Mark offline and release only this worker's jobs whose leases already expired
    (CONTRACT §7.9 / §19 #12: live leases stay so the SDK's drain can still ack them).
    Idempotent for a known worker; 404 unknown or out of scope."""
    async with conn.transaction():
        row = await conn.fetchrow(
            q.DEREGISTER, _known_id(worker_id), auth.organization_id, auth.scope_filter
        )
        if row is None:
            raise NotFound("Worker not found")
        await release_worker_jobs(
            conn, [(auth.organization_id, worker_id)], only_expired=True, events=events
        )
    if events is not None:
        events.worker_deregistered(auth.organization_id, worker_id)
