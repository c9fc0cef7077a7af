"""Queue rules: list, read, configure, pause/resume, stats, delete (CONTRACT §7.8, §9.1).

Functions take an asyncpg connection inside the request's transaction; they import no web
framework and no Redis. Path names are validated by the routes (`valid_queue_name`).
Scope: reads of out-of-scope queues answer 404 (no existence leak); writes answer 403.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import Conflict, NotFound
from spooled_backend.core.responses import rfc3339
from spooled_backend.organizations import quotas
from spooled_backend.queues import queries as q
from spooled_backend.queues.schemas import UpdateQueueConfig


def _implicit(
    settings: Settings, auth: AuthContext, name: str, row: asyncpg.Record
) -> dict[str, Any]:
    """A queue that holds jobs (or an active schedule) but has no config row (CONTRACT §7.8)."""
    return {
        "id": f"implicit:{name}",
        "organization_id": auth.organization_id,
        "queue_name": name,
        "max_retries": settings.queue_default_max_retries,
        "default_timeout": settings.queue_default_timeout_secs,
        "rate_limit": None,
        "enabled": True,
        "settings": {"implicit": True},
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def list_queues(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext
) -> list[dict[str, Any]]:
    """`[QueueConfigSummary]` = configured ∪ implicit queues in the key's scope, sorted by
    name, at most 100: `{queue_name, max_retries, default_timeout, rate_limit, enabled}`."""
    rows = await conn.fetch(q.LIST_QUEUES, auth.organization_id, auth.scope_filter)
    out = []
    for r in rows:
        if r["enabled"] is None:  # implicit: no config row, server defaults
            out.append(
                {
                    "queue_name": r["queue_name"],
                    "max_retries": settings.queue_default_max_retries,
                    "default_timeout": settings.queue_default_timeout_secs,
                    "rate_limit": None,
                    "enabled": True,
                }
            )
        else:
            out.append(dict(r))
    return out


async def get_queue(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, name: str
) -> dict[str, Any]:
    """The QueueConfig; implicit queues are synthesised with id `implicit:<name>`.
    NotFound when the queue is neither configured nor in use, or out of the key's scope."""
    auth.require_queue_visible(name, "Queue")
    row = await conn.fetchrow(q.GET_CONFIG, auth.organization_id, name)
    if row is not None:
        return dict(row)
    seen = await conn.fetchrow(q.IMPLICIT_QUEUE, auth.organization_id, name)
    if seen is None:
        raise NotFound("Queue not found")
    return _implicit(settings, auth, name, seen)


async def update_config(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    name: str,
    body: UpdateQueueConfig,
) -> dict[str, Any]:
    """Upsert the config: omitted fields keep their value (server defaults on first create),
    `settings` is merged over the stored object, `rate_limit` (jobs/second, ≤100000) may be
    `null` to remove it. A brand-new queue is charged to `max_queues` (429 QUOTA_EXCEEDED).
    403 out of scope. Returns the QueueConfig."""
    auth.require_queue(name)
    async with conn.transaction():
        await quotas.reserve_new_queues(conn, settings, auth, [name])
        row = await conn.fetchrow(
            q.UPSERT_CONFIG,
            auth.organization_id,
            name,
            body.max_retries,
            body.default_timeout,
            body.rate_limit,
            body.sets_rate_limit,
            body.enabled,
            body.settings,
            settings.queue_default_max_retries,
            settings.queue_default_timeout_secs,
        )
    return dict(row)


async def _require_exists(conn: asyncpg.Connection, auth: AuthContext, name: str) -> None:
    if not await conn.fetchval(q.QUEUE_EXISTS, auth.organization_id, name):
        raise NotFound("Queue not found")


def _stored_pause(config: asyncpg.Record | None) -> tuple[datetime | None, str | None]:
    """(paused_at, reason) from the settings of a paused config row, tolerating any junk a
    user may have written into `settings` through the config endpoint."""
    if config is None or config["enabled"]:
        return None, None
    stored = config["settings"] if isinstance(config["settings"], dict) else {}
    reason = stored.get("paused_reason")
    return _parse_time(stored.get("paused_at")), reason if isinstance(reason, str) else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11+: accepts a trailing Z
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def pause_queue(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    name: str,
    reason: str | None,
) -> dict[str, Any]:
    """Pause: `enabled=false` and `{paused: true, paused_at, paused_reason}` merged into settings.
    Claims then hand out nothing for this queue; enqueueing still works (CONTRACT §9.1).
    Pausing a paused queue keeps its original `paused_at`. 404 for unknown queues, 403 scope.
    Returns `{queue_name, paused: true, paused_at, reason?}`."""
    auth.require_queue(name)
    async with conn.transaction():
        current = await conn.fetchrow(q.LOCK_CONFIG, auth.organization_id, name)
        if current is None:
            await _require_exists(conn, auth, name)
        paused_at, previous_reason = _stored_pause(current)
        paused_at = paused_at or datetime.now(UTC)
        reason = reason if reason is not None else previous_reason
        patch = {"paused": True, "paused_at": rfc3339(paused_at), "paused_reason": reason}
        await conn.fetchrow(
            q.PAUSE_QUEUE,
            auth.organization_id,
            name,
            patch,
            settings.queue_default_max_retries,
            settings.queue_default_timeout_secs,
        )
    out: dict[str, Any] = {"queue_name": name, "paused": True, "paused_at": paused_at}
    if reason is not None:
        out["reason"] = reason
    return out


async def resume_queue(conn: asyncpg.Connection, auth: AuthContext, name: str) -> dict[str, Any]:
    """Resume: `enabled=true`, `settings.paused=false`. `paused_duration_secs` (int) comes from
    the stored `paused_at`, 0 when unknown or not paused. 404 unknown queue, 403 scope.
    Returns `{queue_name, resumed: true, paused_duration_secs}`."""
    auth.require_queue(name)
    async with conn.transaction():
        current = await conn.fetchrow(q.LOCK_CONFIG, auth.organization_id, name)
        if current is None:
            await _require_exists(conn, auth, name)
            return {"queue_name": name, "resumed": True, "paused_duration_secs": 0}
        paused_at, _ = _stored_pause(current)
        await conn.execute(q.RESUME_QUEUE, auth.organization_id, name)
    duration = 0
    if paused_at is not None:
        duration = max(0, int((datetime.now(UTC) - paused_at).total_seconds()))
    return {"queue_name": name, "resumed": True, "paused_duration_secs": duration}


async def queue_stats(conn: asyncpg.Connection, auth: AuthContext, name: str) -> dict[str, Any]:
    """`{queue_name, pending_jobs, processing_jobs, completed_jobs_24h, failed_jobs_24h,
    avg_processing_time_ms (float ms | null), max_job_age_seconds (int | null, oldest
    pending/scheduled), active_workers (healthy workers on the queue)}` (CONTRACT §7.8).
    Queues without jobs report zeros; out-of-scope names answer 404."""
    auth.require_queue_visible(name, "Queue")
    row = await conn.fetchrow(q.QUEUE_STATS, auth.organization_id, name)
    workers = await conn.fetchval(q.ACTIVE_WORKERS, auth.organization_id, name)
    return {
        "queue_name": name,
        "pending_jobs": row["pending_jobs"],
        "processing_jobs": row["processing_jobs"],
        "completed_jobs_24h": row["completed_jobs_24h"],
        "failed_jobs_24h": row["failed_jobs_24h"],
        "avg_processing_time_ms": row["avg_processing_time_ms"],
        "max_job_age_seconds": row["max_job_age_seconds"],
        "active_workers": workers,
    }


async def delete_queue(
    conn: asyncpg.Connection, auth: AuthContext, name: str, delete_jobs: bool
) -> None:
    """Delete a queue (CONTRACT §7.8).

    Without `delete_jobs`: removes only the config row; 409 while pending/scheduled/processing
    jobs exist, and 409 for a config-less queue that still holds finished jobs (use
    `delete_jobs=true`). With `delete_jobs`: deletes the queue's jobs (history and dependency
    edges cascade), its dead-letter audit rows and its config in this one transaction.
    A queue that exists only because an active schedule targets it answers 409.
    404 unknown queue; 403 out of scope.
    """
    auth.require_queue(name)
    org = auth.organization_id
    async with conn.transaction():
        config = await conn.fetchrow(q.LOCK_CONFIG, org, name)
        counts = await conn.fetchrow(q.JOB_COUNTS, org, name)
        if config is None and counts["total"] == 0:
            await _require_exists(conn, auth, name)
            raise Conflict(
                f"Queue '{name}' is targeted by an active schedule; pause or delete the schedule"
            )
        if delete_jobs:
            await conn.execute(q.DELETE_QUEUE_JOBS, org, name)
            await conn.execute(q.DELETE_QUEUE_DLQ, org, name)
            await conn.execute(q.DELETE_CONFIG, org, name)
            return
        if counts["active"]:
            raise Conflict(
                f"Queue '{name}' has {counts['active']} pending or processing jobs; "
                "wait for them or delete with delete_jobs=true"
            )
        if config is None:
            raise Conflict(
                f"Queue '{name}' has no configuration but still holds {counts['total']} finished "
                "jobs; delete with delete_jobs=true to remove them"
            )
        await conn.execute(q.DELETE_CONFIG, org, name)
