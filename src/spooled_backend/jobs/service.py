"""Job rules: create, claim, acknowledge, cancel, retry, list (CONTRACT §7.6, §8).

Functions take an asyncpg connection (the caller owns the transaction) and an `Events` sink
for what happened; they import no web framework and no Redis, so REST and gRPC share them.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import (
    BadRequest,
    Conflict,
    LeaseExpired,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    SpooledError,
)
from spooled_backend.core.events import Events
from spooled_backend.core.jsonvalue import check_storable, clean_text, json_size, json_texts
from spooled_backend.db.onetrip import Bound
from spooled_backend.jobs import ack, dependencies
from spooled_backend.jobs import queries as q
from spooled_backend.jobs.rules import retry_delay_secs
from spooled_backend.observability import metrics, tracing
from spooled_backend.organizations import quota_queries, quotas
from spooled_backend.organizations.plans import limits_for, upgrade_tier

TERMINAL = ("completed", "failed", "deadletter", "cancelled")


@dataclass(frozen=True)
class NewJob:
    """A validated job to insert (the shape shared by REST, bulk, gRPC, schedules, ingest)."""

    queue_name: str
    payload: Any
    priority: int = 0
    max_retries: int | None = None
    timeout_seconds: int | None = None
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    idempotency_key: str | None = None
    tags: Any = None
    parent_job_id: str | None = None
    completion_webhook: str | None = None
    completion_webhook_secret: str | None = None
    # False for ingested webhooks: a new queue name is not charged to `max_queues` (§7.13).
    charge_new_queue: bool = True


def check_payload(auth: AuthContext, settings: Settings, payload: Any, field: str = "payload") -> None:
    """Storable JSON within the global cap and the plan's `max_payload_size_bytes` (413)."""
    check_storable(payload, field)
    size = json_size(payload)
    limits = limits_for(auth.plan_tier, auth.custom_limits, settings.plan_limits_enabled)
    cap = settings.queue_max_payload_size_bytes
    plan_cap = limits.get("max_payload_size_bytes")
    if plan_cap is not None:
        cap = min(cap, int(plan_cap))
    if size > cap:
        extra: dict[str, Any] = {"current": size, "limit": cap, "plan": limits["tier"]}
        if (nxt := upgrade_tier(limits["tier"])) is not None:
            extra["upgrade_to"] = nxt
        raise PayloadTooLarge(
            f"Payload size {size} bytes exceeds the limit of {cap} bytes", extra=extra
        )


async def queue_defaults(
    conn: asyncpg.Connection, settings: Settings, org_id: str, queue_name: str
) -> tuple[int, int]:
    """(max_retries, timeout_seconds) from queue config, else the server defaults (§9.1)."""
    row = await conn.fetchrow(q.QUEUE_DEFAULTS, org_id, queue_name)
    if row is None:
        return settings.queue_default_max_retries, settings.queue_default_timeout_secs
    return row["max_retries"], row["default_timeout"]


def _own_transaction(conn: asyncpg.Connection) -> AbstractAsyncContextManager[object]:
    """A transaction only when the caller has none (a request already holds one)."""
    return nullcontext() if conn.is_in_transaction() else conn.transaction()


def check_new_job(settings: Settings, auth: AuthContext, job: NewJob) -> None:
    """The checks of a job before anything is written: queue scope (403), payload (413 /
    422) and tags (422, at most 64 KiB → 400)."""
    auth.require_queue(job.queue_name)
    check_payload(auth, settings, job.payload)
    if job.tags is not None:
        check_storable(job.tags, "tags")
        if json_size(job.tags) > 65536:
            raise BadRequest("tags must be at most 64 KiB")


async def create_job(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, job: NewJob, events: Events
) -> tuple[str, bool]:
    """Insert one job; returns (job_id, created). An idempotency hit returns (existing id, False).

    Raises AccessDenied (queue scope), BadRequest (parent job), PayloadTooLarge, ValidationFailed,
    QuotaExceeded (429: `jobs_per_day`, `active_jobs`, or `queues` for a new queue name) and
    FeatureDisabled (403, a cap of 0) — see organizations/quotas.py.
    """
    check_new_job(settings, auth, job)
    dependencies_met = True
    parent_status: str | None = None
    try:
        # Plan quotas (CONTRACT §12.2): new-queue cap, active-jobs pre-check and the daily
        # reservation share the insert's transaction; a duplicate gives its reservation back.
        # Inside a request's transaction no savepoint is needed: a database error aborts the
        # whole request, and a QuotaExceeded is raised before anything is written.
        async with _own_transaction(conn):
            if job.parent_job_id is not None:
                # Row-locks the parent until commit (R11): see queries.PARENT_JOB.
                parent = await conn.fetchrow(q.PARENT_JOB, job.parent_job_id, auth.organization_id)
                if parent is None or parent["queue_name"] != job.queue_name:
                    raise BadRequest(
                        "parent_job_id must reference a job in the same organization and queue"
                    )
                parent_status = parent["status"]
                dependencies_met = parent_status == "completed"
            reservation = await quotas.reserve_jobs(
                conn, settings, auth, [job.queue_name] if job.charge_new_queue else [], 1
            )
            row = await conn.fetchrow(
                q.INSERT_JOB,
                auth.organization_id,
                job.queue_name,
                job.payload,
                job.priority,
                job.max_retries,
                job.timeout_seconds,
                job.scheduled_at,
                job.expires_at,
                job.idempotency_key,
                job.tags,
                job.parent_job_id,
                job.completion_webhook,
                job.completion_webhook_secret,
                dependencies_met,
                settings.queue_default_max_retries,
                settings.queue_default_timeout_secs,
            )
            if not row["created"]:
                await reservation.refund(conn, 1)
            elif job.parent_job_id is not None:
                await conn.execute(
                    q.INSERT_DEPENDENCY, auth.organization_id, row["id"], job.parent_job_id
                )
                if parent_status in ("failed", "deadletter", "cancelled"):
                    # The parent can no longer succeed: the child is cancelled at once (R11).
                    await dependencies.settle(conn, events, [], [row["id"]])
    except QuotaExceeded:
        # A replay of an already-created job still answers with its id (§8.5, §3.4).
        if job.idempotency_key is not None:
            existing = await conn.fetchval(
                quota_queries.FIND_IDEMPOTENT_JOB, auth.organization_id, job.idempotency_key
            )
            if existing is not None:
                return existing, False
        raise
    if row["created"]:
        metrics.JOBS_ENQUEUED.inc(queue=job.queue_name, organization=auth.organization_id)
        if tracing.ENABLED:
            await tracing.job_enqueued(conn, auth.organization_id, job.queue_name, [row["id"]])
        events.job_created(auth.organization_id, row["id"], job.queue_name, job.priority, row["status"])
    return row["id"], row["created"]


async def create_jobs(
    db: Bound, settings: Settings, auth: AuthContext, jobs: list[NewJob], events: Events,
) -> list[tuple[str, bool] | SpooledError]:
    """Many single creates of one organization as one transaction (jobs/coalesce.py): per job,
    in order, `create_job`'s `(job_id, created)` or the SpooledError it would raise.

    Jobs without a parent, of an organization that no quota limits (no `queues`,
    `active_jobs` or `jobs_per_day` cap: quotas are decided per job), are inserted by one
    statement (`INSERT_JOBS_MANY`, the same rows, history and defaults as INSERT_JOB), in one
    round trip when that is the whole transaction (db/onetrip.py); the others go through
    `create_job` one by one. Idempotency keys must be distinct within one call (the coalescer
    sends a repeated key in the next batch)."""
    limits = quotas.effective_limits(settings, auth)
    unlimited = all(limits[k] is None for k in ("max_queues", "max_active_jobs", "max_jobs_per_day"))
    alone = not tracing.ENABLED and unlimited and all(j.parent_job_id is None for j in jobs)
    transaction = nullcontext(None) if alone else db.transaction()
    async with transaction as conn:
        out, together = await _split(conn, settings, auth, jobs, unlimited, events)
        if together:
            inserted = await insert_jobs(db.fetch_alone if conn is None else conn.fetch, conn,
                                         settings, auth, [jobs[i] for i in together], events)
            for index, answer in zip(together, inserted, strict=True):
                out[index] = answer
        return out


async def _split(
    conn: asyncpg.Connection | None, settings: Settings, auth: AuthContext, jobs: list[NewJob],
    unlimited: bool, events: Events,
) -> tuple[list[Any], list[int]]:
    """Per job: `create_job`'s answer for those that quotas or a parent decide one by one (in
    `conn`'s transaction; only then is `conn` used), its 4xx, or None and its index in the
    second list (to insert together)."""
    out: list[Any] = [None] * len(jobs)
    together: list[int] = []
    for index, job in enumerate(jobs):
        try:
            if not unlimited or job.parent_job_id is not None:
                assert conn is not None
                out[index] = await create_job(conn, settings, auth, job, events)
                continue
            check_new_job(settings, auth, job)
        except SpooledError as exc:
            out[index] = exc
            continue
        together.append(index)
    return out, together


def insert_arguments(org_id: str, jobs: list[NewJob], new_ids: list[str], default_retries: int,
                     default_timeout_secs: int) -> tuple[Any, ...]:
    """`INSERT_JOBS_MANY`'s parameters, in order, for `jobs` with their chosen `new_ids`."""
    return (
        org_id, [j.queue_name for j in jobs], json_texts([j.payload for j in jobs]),
        [j.priority for j in jobs], [j.max_retries for j in jobs],
        [j.timeout_seconds for j in jobs], [j.scheduled_at for j in jobs],
        [j.expires_at for j in jobs], [j.idempotency_key for j in jobs],
        json_texts([j.tags for j in jobs]), [j.completion_webhook for j in jobs],
        [j.completion_webhook_secret for j in jobs], new_ids, default_retries,
        default_timeout_secs,
    )


async def insert_jobs(
    fetch: Any, conn: asyncpg.Connection | None, settings: Settings, auth: AuthContext,
    jobs: list[NewJob], events: Events,
) -> list[tuple[str, bool]]:
    """`INSERT_JOBS_MANY` for `jobs` of one organization (checked, quotas decided, distinct
    idempotency keys): per job, in order, `(job_id, created)` (`created` False: the key's
    existing job). Metrics and events for the created ones. `fetch` runs the statement (a
    connection's `fetch`, or `Bound.fetch_alone` for one round trip); `conn` is the caller's
    transaction, for tracing only."""
    new_ids = [str(uuid.uuid4()) for _ in jobs]
    rows = await fetch(q.INSERT_JOBS_MANY, *insert_arguments(
        auth.organization_id, jobs, new_ids,
        settings.queue_default_max_retries, settings.queue_default_timeout_secs))
    # RETURNING has no guaranteed order: match keyed jobs by key, the others by their new id.
    by_key = {r["idempotency_key"]: r for r in rows if r["idempotency_key"] is not None}
    by_id = {r["id"]: r for r in rows}
    answers: list[tuple[str, bool]] = []
    created: dict[str, list[str]] = {}
    for job, new_id in zip(jobs, new_ids, strict=True):
        row = by_key[job.idempotency_key] if job.idempotency_key else by_id[new_id]
        answers.append((row["id"], row["created"]))
        if row["created"]:
            metrics.JOBS_ENQUEUED.inc(queue=job.queue_name, organization=auth.organization_id)
            events.job_created(auth.organization_id, row["id"], job.queue_name,
                               row["priority"], row["status"])
            created.setdefault(job.queue_name, []).append(row["id"])
    if conn is not None and tracing.ENABLED:
        for queue_name, ids in created.items():
            await tracing.job_enqueued(conn, auth.organization_id, queue_name, ids)
    return answers


async def get_job(conn: asyncpg.Connection, auth: AuthContext, job_id: str) -> dict[str, Any]:
    """The full Job object; NotFound for other orgs and out-of-scope queues."""
    row = await conn.fetchrow(q.GET_JOB, job_id, auth.organization_id)
    if row is None or not auth.can_access_queue(row["queue_name"]):
        raise NotFound("Job not found")
    job = dict(row)
    if job["status"] != "processing":
        job["lease_id"] = None  # kept in the row for fencing late acks, not part of the contract
    return job


async def claim_jobs(
    conn: asyncpg.Connection,
    auth: AuthContext,
    queue_name: str,
    worker_id: str,
    limit: int,
    lease_secs: int,
    events: Events,
) -> list[dict[str, Any]]:
    """Lease up to `limit` ready jobs (priority DESC, created_at ASC), in the caller's
    transaction. Empty when paused/idle.

    A queue with `rate_limit` (jobs/second) hands out at most what its token bucket allows,
    across all replicas; the bucket lives in the claim statement (queues/ratelimit.py).
    """
    return await _claim(conn.fetch, conn, auth, queue_name, worker_id, limit, lease_secs, events)


async def claim_jobs_alone(
    db: Bound,
    auth: AuthContext,
    queue_name: str,
    worker_id: str,
    limit: int,
    lease_secs: int,
    events: Events,
) -> list[dict[str, Any]]:
    """`claim_jobs` as a transaction of its own: one round trip (db/onetrip.py), or
    BEGIN…COMMIT when tracing adds statements."""
    if tracing.ENABLED:
        async with db.transaction(generic_plans=False) as conn:
            return await claim_jobs(conn, auth, queue_name, worker_id, limit, lease_secs, events)
    return await _claim(db.fetch_alone, None, auth, queue_name, worker_id, limit, lease_secs,
                        events)


async def _claim(
    fetch: Any, conn: asyncpg.Connection | None, auth: AuthContext, queue_name: str,
    worker_id: str, limit: int, lease_secs: int, events: Events,
) -> list[dict[str, Any]]:
    """CLAIM_JOBS run by `fetch`; `conn` is the caller's transaction, for tracing only."""
    auth.require_queue(queue_name)
    rows = await fetch(q.CLAIM_JOBS, auth.organization_id, queue_name, limit, worker_id,
                       float(lease_secs))
    claimed = [dict(r) for r in rows]
    if conn is not None and tracing.ENABLED:
        await tracing.jobs_claimed(conn, auth.organization_id, claimed, worker_id)
    for job in claimed:
        events.job_started(auth.organization_id, job["id"], queue_name, worker_id)
    return claimed


async def next_due_epoch(db: Bound, auth: AuthContext, queue_name: str) -> float | None:
    """When the queue's earliest not-yet-due job becomes claimable (epoch seconds), or None."""
    [row] = await db.fetch_alone(q.NEXT_DUE, auth.organization_id, queue_name)
    return float(row[0]) if row[0] is not None else None


def _ack_outcome(prior: asyncpg.Record | None, worker_id: str, lease_id: str | None) -> None:
    """Why a fenced acknowledgement did not apply (CONTRACT §8.4). Always raises.

    `lease_id` None is a legacy call (§21 R1): the worker id stands in for the lease, so a job
    finished under another worker's lease is a lost lease, not this worker's replay."""
    if prior is None:
        raise NotFound("Job not found")
    status = prior["status"]
    if status != "processing":
        if status in TERMINAL:
            if lease_id is None:
                if prior["assigned_worker_id"] not in (None, worker_id):
                    raise LeaseExpired("The job was last leased to another worker")
            elif prior["lease_id"] is not None and prior["lease_id"] != lease_id:
                raise LeaseExpired("The provided lease_id does not match the job's last lease")
            raise Conflict(f"Job is already {status}")
        raise LeaseExpired("Lease expired: the job was released and is no longer processing")
    if lease_id is not None and prior["lease_id"] != lease_id:
        raise LeaseExpired("The provided lease_id does not match the job's current lease")
    if prior["assigned_worker_id"] != worker_id:
        raise NotFound("Job not found or not owned by this worker")
    raise LeaseExpired("Lease expired")


ack_refusal = _ack_outcome  # the same per-item answers for the batch ack (jobs/ack.py)


def _count_legacy(operation: str, lease_id: str | None) -> None:
    """`spooled_legacy_ack_total{operation}`: acks from clients that send no `lease_id`."""
    if lease_id is None:
        metrics.LEGACY_ACKS.labels(operation=operation).inc()


@dataclass(frozen=True)
class FailOutcome:
    will_retry: bool
    retry_delay_secs: int
    status: str


def fail_outcome(row: asyncpg.Record) -> FailOutcome:
    """The fail route's answer from an applied ACK_JOBS row: retry with backoff (§8.3) when
    the job went back to pending, else dead-lettered."""
    will_retry = row["new_status"] == "pending"
    return FailOutcome(
        will_retry=will_retry,
        retry_delay_secs=retry_delay_secs(row["retry_count"]) if will_retry else 0,
        status=row["new_status"],
    )


async def complete_job(
    conn: asyncpg.Connection,
    auth: AuthContext,
    job_id: str,
    worker_id: str,
    lease_id: str | None,
    result: Any,
    events: Events,
) -> None:
    """processing → completed in the caller's transaction, fenced by worker and `lease_id`
    (None = legacy fencing, §21 R1). Replays answer 409. The same statement as the batch ack
    and the group commit (`ack.apply`), so every door applies one set of rules."""
    await _ack_one(conn, auth, ack.AckItem("complete", job_id, worker_id, lease_id, result),
                   events)


async def fail_job(
    conn: asyncpg.Connection,
    auth: AuthContext,
    job_id: str,
    worker_id: str,
    lease_id: str | None,
    error: str,
    events: Events,
) -> FailOutcome:
    """processing → pending (retry with backoff, §8.3) or deadletter; fenced like complete.
    `error` is cleaned (NUL removed, lone surrogates → U+FFFD, §21 R15) for every door."""
    item = ack.AckItem("fail", job_id, worker_id, lease_id, error=clean_text(error))
    return fail_outcome(await _ack_one(conn, auth, item, events))


async def _ack_one(conn: asyncpg.Connection, auth: AuthContext, item: ack.AckItem,
                   events: Events) -> asyncpg.Record:
    [outcome] = await ack.apply(conn, auth, [item], events)
    if isinstance(outcome, SpooledError):
        raise outcome
    return outcome


async def heartbeat_job(
    conn: asyncpg.Connection,
    auth: AuthContext,
    job_id: str,
    worker_id: str,
    lease_id: str | None,
    lease_secs: int,
) -> datetime:
    """Extend the lease to now + `lease_secs` seconds; returns the new expiry."""
    _count_legacy("heartbeat", lease_id)
    prior = await conn.fetchrow(
        q.HEARTBEAT_JOB, job_id, auth.organization_id, worker_id, lease_id, float(lease_secs),
        auth.scope_filter,
    )
    if prior is None or prior["acked_at"] is None:
        _ack_outcome(prior, worker_id, lease_id)
    assert prior is not None
    expires: datetime = prior["acked_at"]
    return expires


async def cancel_job(conn: asyncpg.Connection, auth: AuthContext, job_id: str, events: Events) -> None:
    """pending/scheduled → cancelled. 404 missing/out of scope, 409 other states."""
    row = await conn.fetchrow(q.CANCEL_JOB, job_id, auth.organization_id, auth.scope_filter)
    if row is None:
        raise NotFound("Job not found")
    if not row["cancelled"]:
        raise Conflict(f"Job cannot be cancelled: it is {row['status']}")
    events.job_status(auth.organization_id, job_id, row["queue_name"], row["status"], "cancelled")
    dependencies.emit(events, row["settled"])


async def retry_job(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, job_id: str, events: Events
) -> dict[str, Any]:
    """failed/deadletter → pending with retry_count 0 (§8.2). Returns the Job.

    404 missing/out of scope, 409 other states, 429 QUOTA_EXCEEDED when the job would take the
    organization past `max_active_jobs` (nothing changes then)."""
    async with conn.transaction():
        row = await conn.fetchrow(q.RETRY_JOB, job_id, auth.organization_id)
        if row is None or not auth.can_access_queue(row["queue_name"]):
            raise NotFound("Job not found")
        if not row["retried"]:
            raise Conflict(f"Only failed or deadletter jobs can be retried; job is {row['status']}")
        await quotas.check_active_jobs_after(conn, settings, auth, 1)
    metrics.JOBS_RETRIED.inc(queue=row["queue_name"], organization=auth.organization_id)
    events.job_status(auth.organization_id, job_id, row["queue_name"], row["status"], "pending")
    dependencies.emit(events, row["settled"])
    return await get_job(conn, auth, job_id)


async def set_priority(
    conn: asyncpg.Connection, auth: AuthContext, job_id: str, priority: int
) -> dict[str, Any]:
    """Change priority of a pending/scheduled job: `{job_id, old_priority, new_priority}`."""
    async with conn.transaction():
        row = await conn.fetchrow(q.SET_PRIORITY, job_id, auth.organization_id, priority)
        if row is None or not auth.can_access_queue(row["queue_name"]):
            raise NotFound("Job not found or not pending")
    return {"job_id": job_id, "old_priority": row["old_priority"], "new_priority": row["new_priority"]}


STAT_KEYS = ("pending", "scheduled", "processing", "completed", "failed", "deadletter", "cancelled")


async def job_stats(
    conn: asyncpg.Connection, auth: AuthContext, queue_name: str | None
) -> dict[str, int]:
    """Counts per status plus `total`, restricted to the key's scope."""
    if queue_name is not None:
        auth.require_queue_visible(queue_name, "Queue")
    rows = await conn.fetch(q.STATS, auth.organization_id, queue_name, auth.scope_filter)
    stats = dict.fromkeys(STAT_KEYS, 0)
    for row in rows:
        stats[row["status"]] = int(row["n"])
    stats["total"] = sum(stats.values())
    return stats


async def batch_status(
    conn: asyncpg.Connection, auth: AuthContext, ids: list[str]
) -> list[dict[str, Any]]:
    rows = await conn.fetch(q.BATCH_STATUS, auth.organization_id, ids, auth.scope_filter)
    return [dict(r) for r in rows]


def utcnow() -> datetime:
    return datetime.now(UTC)
