"""Many jobs at once: bulk enqueue and dead-letter retry/purge (CONTRACT §7.6, §7.7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from spooled_backend.config import Settings
from spooled_backend.core.body import validation_error
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import AccessDenied, BadRequest, SpooledError
from spooled_backend.core.events import Events, NoEvents
from spooled_backend.jobs import dependencies
from spooled_backend.jobs import queries as q
from spooled_backend.jobs.schemas import BulkCreate, BulkItem
from spooled_backend.jobs.service import NewJob, check_payload, insert_jobs, queue_defaults
from spooled_backend.observability import metrics
from spooled_backend.organizations import quotas


async def bulk_create(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    body: BulkCreate,
    events: Events,
) -> dict[str, Any]:
    """Insert valid items in one statement; report each item in `succeeded` or `failed`.

    Duplicate idempotency keys inside the batch collapse to the first item (§8.5); every
    item is still reported, later duplicates with the first's id and `created: false`.
    Raises QuotaExceeded (429) for the whole batch when the valid items do not fit the plan.
    """
    auth.require_queue(body.queue_name)
    retries, timeout = await queue_defaults(conn, settings, auth.organization_id, body.queue_name)
    if body.default_max_retries is not None:
        retries = body.default_max_retries
    if body.default_timeout_seconds is not None:
        timeout = body.default_timeout_seconds

    failed: list[dict[str, Any]] = []
    accepted: list[tuple[int, BulkItem]] = []
    first_index_by_key: dict[str, int] = {}
    duplicates: list[tuple[int, int]] = []  # (index, index of the first item with that key)
    for index, raw in enumerate(body.jobs):
        try:
            item = BulkItem.model_validate(raw)
            check_payload(auth, settings, item.payload)
        except ValidationError as exc:
            failed.append({"index": index, "error": validation_error(exc).message})
            continue
        except SpooledError as exc:
            failed.append({"index": index, "error": exc.message})
            continue
        key = item.idempotency_key
        if key is not None and key in first_index_by_key:
            duplicates.append((index, first_index_by_key[key]))
            continue
        if key is not None:
            first_index_by_key[key] = index
        accepted.append((index, item))

    results: dict[int, dict[str, Any]] = {}
    if accepted:
        jobs = [NewJob(body.queue_name, item.payload,
                       priority=body.default_priority if item.priority is None else item.priority,
                       max_retries=retries, timeout_seconds=timeout,
                       scheduled_at=item.scheduled_at, idempotency_key=item.idempotency_key)
                for _, item in accepted]
        # Quota for the whole batch up front, all-or-nothing (CONTRACT §7.6, §12.2); items that
        # turn out to be idempotent duplicates are refunded in the same transaction.
        async with conn.transaction():
            reservation = await quotas.reserve_jobs(
                conn, settings, auth, [body.queue_name], len(accepted)
            )
            answers = await insert_jobs(conn.fetch, conn, settings, auth, jobs, events)
            await reservation.refund(conn, sum(1 for _, created in answers if not created))
        for (index, _), (job_id, created) in zip(accepted, answers, strict=True):
            results[index] = {"index": index, "job_id": job_id, "created": created}
    for index, first in duplicates:
        if first in results:
            results[index] = {"index": index, "job_id": results[first]["job_id"], "created": False}
    succeeded = [results[i] for i in sorted(results)]
    return {
        "succeeded": succeeded,
        "failed": failed,
        "total": len(body.jobs),
        "success_count": len(succeeded),
        "failure_count": len(failed),
    }


async def retry_dead_letters(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    job_ids: list[str] | None,
    queue_name: str | None,
    limit: int,
    events: Events,
) -> dict[str, Any]:
    """deadletter → pending (oldest first). Scoped keys must name an in-scope queue, no ids.

    All-or-nothing 429 QUOTA_EXCEEDED when the retried jobs would take the organization past
    `max_active_jobs` (CONTRACT §7.7)."""
    if not auth.unrestricted:
        if job_ids:
            raise AccessDenied("Queue-scoped API keys cannot retry dead-letter jobs by id")
        if queue_name is None:
            raise AccessDenied("Queue-scoped API keys must pass an in-scope queue_name")
    if queue_name is not None:
        auth.require_queue(queue_name)
    if job_ids is not None and len(job_ids) > limit:
        raise BadRequest(f"At most {limit} job_ids may be retried at once")
    async with conn.transaction():
        rows = await conn.fetch(
            q.RETRY_DLQ, auth.organization_id, queue_name, job_ids, limit, auth.scope_filter
        )
        await quotas.check_active_jobs_after(conn, settings, auth, len(rows))
    ids = [r["id"] for r in rows]
    for row in rows:
        metrics.JOBS_RETRIED.inc(queue=row["queue_name"], organization=auth.organization_id)
        events.job_status(auth.organization_id, row["id"], row["queue_name"], "deadletter", "pending")
    if rows:
        dependencies.emit(events, rows[0]["settled"])
    return {"retried_count": len(ids), "retried_jobs": ids, "job_ids": ids, "skipped_jobs": []}


PURGE_CONFIRM_HINT = (
    'send {"confirm": true} in the JSON body (with optional queue_name, older_than, limit) '
    "to delete dead-letter jobs"
)


async def purge_dead_letters(
    conn: asyncpg.Connection,
    auth: AuthContext,
    confirm: bool,
    queue_name: str | None,
    older_than: datetime | None,
    limit: int,
    events: Events | None = None,
) -> dict[str, int]:
    """Delete dead-letter jobs and their audit rows; `confirm` must be true (400)."""
    if not confirm:
        raise BadRequest(f"Purge requires confirmation: {PURGE_CONFIRM_HINT}")
    if not auth.unrestricted and queue_name is None:
        raise AccessDenied("Queue-scoped API keys must pass an in-scope queue_name")
    if queue_name is not None:
        auth.require_queue(queue_name)
    async with conn.transaction():
        row = await conn.fetchrow(
            q.PURGE_DLQ, auth.organization_id, queue_name, older_than, limit, auth.scope_filter
        )
        # Their dependency rows went with the purged jobs: settle them (§8.9 orphans).
        await dependencies.settle(conn, events or NoEvents(), [], row["orphans"])
    return {"purged_count": int(row["purged"])}
