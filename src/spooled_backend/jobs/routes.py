"""REST routes for jobs and the dead-letter queue (CONTRACT §6 #34–52, §7.6, §7.7).

Literal paths (`/jobs/stats`, `/jobs/status`, `/jobs/bulk`, `/jobs/claim`, `/jobs/dlq…`) are
registered before `/jobs/{job_id}` so they win.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter, ValidationError

from spooled_backend.core.body import parse_body, parse_optional_body, validation_error
from spooled_backend.core.deps import Auth, Conn, ReadConn, State
from spooled_backend.core.errors import BadRequest, NotFound, ValidationFailed
from spooled_backend.core.jsonvalue import check_storable, clean_text
from spooled_backend.core.openapi import doc
from spooled_backend.core.pagination import clamp_page, has_more_header
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.core.validators import UtcDatetime, parse_uuid_id, valid_queue_name
from spooled_backend.db import onetrip
from spooled_backend.jobs import ack, batch, dependencies, listing, service
from spooled_backend.jobs.rules import parse_order, parse_statuses
from spooled_backend.jobs.schemas import (
    Acked,
    AckJobs,
    AckResult,
    AddDependencies,
    BoostPriority,
    BulkCreate,
    BulkResult,
    ClaimJobs,
    ClaimResult,
    CompleteJob,
    CreateJob,
    DependenciesAdded,
    DlqPurged,
    DlqRetried,
    FailJob,
    FailResult,
    HeartbeatJob,
    HeartbeatResult,
    HistoryEvent,
    Job,
    JobCreated,
    JobDependencies,
    JobStats,
    JobStatusItem,
    JobSummary,
    PriorityChanged,
    PurgeDlq,
    RetryDlq,
)

router = APIRouter(prefix="/api/v1", tags=["jobs"])

TAG_MAX = 1024
_aware: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def _query_time(value: str | None, field: str) -> datetime | None:
    """RFC 3339 query timestamps with an offset; naive or malformed → 400."""
    if value is None:
        return None
    try:
        return _aware.validate_python(value)
    except ValidationError as exc:
        err = validation_error(exc)
        raise ValidationFailed(field, err.details[0]["message"], "datetime") from None


def _filter(
    queue_name: str | None,
    status: str | None,
    tag: str | None,
    q: str | None,
    job_type: str | None,
    created_after: str | None,
    created_before: str | None,
    order_by: str | None,
    order_dir: str | None,
) -> listing.JobFilter:
    if queue_name is not None:
        valid_queue_name(queue_name)
    # Any tag a job can carry can be filtered on (tags are free JSON): 1..1024 characters, the
    # SDK's own bound; the value is bound as a parameter of `tags ? $n`. Empty = no filter.
    tag = tag or None
    if tag is not None and len(tag) > TAG_MAX:
        raise ValidationFailed("tag", f"must be at most {TAG_MAX} characters", "length")
    column, direction = parse_order(order_by, order_dir)
    check_storable(tag, "tag")
    check_storable(q, "q")
    check_storable(job_type, "job_type")
    return listing.JobFilter(
        queue_name=queue_name,
        statuses=parse_statuses(status),
        tag=tag,
        search=q[:200] if q else None,
        job_type=job_type,
        created_after=_query_time(created_after, "created_after"),
        created_before=_query_time(created_before, "created_before"),
        order_by=column,
        order_dir=direction,
    )


@router.post(
    "/jobs", status_code=201,
    **doc(JobCreated, body=CreateJob, errors=(403, 413),
          also={200: (JobCreated, "Idempotency-key hit: the existing job, nothing changed")}),
)
async def create_job(request: Request, state: State, auth: Auth) -> JSONBody:
    """Create a job → 201 `{id, created: true}`, or 200 `{id, created: false}` on an
    idempotency-key hit (nothing changes). 400/422 validation, 403 scope, 413 payload.
    Inserted together with concurrent creates of the organization (jobs/coalesce.py)."""
    body = await parse_body(request, CreateJob)
    job = service.NewJob(**body.model_dump())
    job_id, created = await state.creates.submit(auth, job, conflict=job.idempotency_key)
    return json_response({"id": job_id, "created": created}, status=201 if created else 200)


@router.get("/jobs", **doc(list[JobSummary], errors=(400,)))
async def list_jobs(
    conn: ReadConn,
    auth: Auth,
    queue_name: str | None = None,
    queue: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    job_type: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    order_by: str | None = None,
    order_dir: str | None = None,
) -> JSONBody:
    """`[JobSummary]` newest first by default; `X-Has-More` from a `limit + 1` fetch.
    `limit` is clamped to 1..100 (default 50); `status` may be a comma list."""
    page = clamp_page(limit, offset, default=50, maximum=100)
    f = _filter(
        queue_name or queue, status, tag, q, job_type, created_after, created_before, order_by, order_dir
    )
    rows, more = await listing.list_jobs(conn, auth, f, page)
    return json_response(rows, headers=has_more_header(more))


@router.get("/jobs/stats", **doc(JobStats, errors=(400, 404)))
async def job_stats(
    conn: ReadConn, auth: Auth, queue_name: str | None = None, queue: str | None = None
) -> JSONBody:
    """Counts per status plus `total` (ints), restricted to the key's queue scope."""
    name = queue_name or queue
    if name is not None:
        valid_queue_name(name)
    return json_response(await service.job_stats(conn, auth, name))


@router.get("/jobs/status", **doc(list[JobStatusItem], errors=(400,)))
async def batch_status(conn: Conn, auth: Auth, ids: str = "") -> JSONBody:
    """`?ids=a,b,c` (≤100) → `[{id, status, queue_name, retry_count, created_at, completed_at}]`;
    unknown and out-of-scope ids are omitted; more than 100 ids → 400."""
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if len(wanted) > 100:
        raise BadRequest("At most 100 job ids may be requested at once")
    if not wanted:
        return json_response([])
    valid = []
    for raw in wanted:
        try:
            valid.append(parse_uuid_id(raw))
        except NotFound:  # a malformed id simply cannot exist
            continue
    return json_response(await service.batch_status(conn, auth, valid))


@router.post("/jobs/bulk", **doc(BulkResult, body=BulkCreate, errors=(403,)))
async def bulk_enqueue(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """Up to 100 jobs into one queue; per-item results (CONTRACT §7.6)."""
    body = await parse_body(request, BulkCreate)
    return json_response(await batch.bulk_create(conn, state.settings, auth, body, state.events))


@router.post("/jobs/claim", **doc(ClaimResult, body=ClaimJobs, errors=(403,)))
async def claim_jobs(request: Request, state: State, auth: Auth) -> JSONBody:
    """Lease up to `limit` ready jobs → `{jobs: [{id, queue_name, payload, retry_count,
    max_retries, timeout_seconds, lease_expires_at, lease_id}]}`; empty when idle or paused.
    `lease_duration_secs` 5..3600 (default WORKER_LEASE_DURATION_SECS).

    `wait_ms` (0..30000): when nothing is claimable, the request is held until a job becomes
    claimable or the time passes, then answers as usual (empty `jobs` on timeout). The wait
    holds no database connection: the fast lane (core/fastlane.py) commits this empty claim,
    waits on `request.state.claim_wait` (jobs/wakeup.py) and runs the claim again."""
    body: ClaimJobs | None = getattr(request.state, "claim_body", None)
    if body is None:
        body = await parse_body(request, ClaimJobs)
        request.state.claim_body = body
        if body.wait_ms:
            wait = body.wait_ms / 1000
            if state.settings.request_timeout_secs > 0:  # answer before the 408 clock runs out
                wait = min(wait, max(state.settings.request_timeout_secs - 1.0, 0.0))
            request.state.claim_deadline = time.monotonic() + wait
    lease = body.lease_duration_secs or state.settings.worker_lease_duration_secs
    wakeups = state.claim_wakeups
    ticket = wakeups.ticket(auth.organization_id, body.queue_name)  # before the claim's snapshot
    async with state.pool.acquire() as conn:
        db = onetrip.bound(state, conn, auth)
        jobs = await service.claim_jobs_alone(
            db, auth, body.queue_name, body.worker_id, body.limit, lease, state.events
        )
        if jobs and len(jobs) == body.limit:
            wakeups.wake(auth.organization_id, body.queue_name)  # there may be more: next claimer
        elif not jobs and body.wait_ms:
            remaining = request.state.claim_deadline - time.monotonic()
            if remaining > 0:
                if not wakeups.due_known(auth.organization_id, body.queue_name):
                    generation = wakeups.due_generation()
                    due = await service.next_due_epoch(db, auth, body.queue_name)
                    wakeups.set_due(auth.organization_id, body.queue_name, due, generation)
                request.state.claim_wait = functools.partial(
                    wakeups.wait, auth.organization_id, body.queue_name, remaining, ticket
                )
    out = [
        {
            "id": j["id"],
            "queue_name": j["queue_name"],
            "payload": j["payload"],
            "retry_count": j["retry_count"],
            "max_retries": j["max_retries"],
            "timeout_seconds": j["timeout_seconds"],
            "lease_expires_at": j["lease_expires_at"],
            "lease_id": j["lease_id"],
            "priority": j["priority"],
        }
        for j in jobs
    ]
    return json_response({"jobs": out})


@router.post("/jobs/ack", **doc(AckResult, body=AckJobs, errors=(400, 403, 422)))
async def ack_jobs(request: Request, state: State, auth: Auth) -> JSONBody:
    """Batch acknowledgement (CONTRACT §20 D5): `{worker_id, completed: [{job_id, lease_id?,
    result?}], failed: [{job_id, lease_id?, error}]}`, at most 100 items together →
    `{results: [{job_id, success: true} | {job_id, success: false, code, message}]}`
    (completed first, then failed, in request order). One transaction; each item follows the
    rules of `/jobs/{id}/complete` and `/jobs/{id}/fail` (fencing, 404/409 per item, retry or
    DLQ, dependents, events). 400 when empty or over 100 items."""
    body = await parse_body(request, AckJobs)
    async with state.pool.acquire() as conn:
        answer = await ack.ack_jobs(onetrip.bound(state, conn, auth), state.settings, auth, body,
                                    state.events)
    return json_response(answer)


@router.get("/jobs/dlq", **doc(list[JobSummary], errors=(400,)))
async def list_dead_letters(
    conn: Conn,
    auth: Auth,
    queue_name: str | None = None,
    queue: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    job_type: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    order_by: str | None = None,
    order_dir: str | None = None,
) -> JSONBody:
    """Dead-letter jobs as `[JobSummary]` + `X-Has-More` (same filters as `GET /jobs`)."""
    page = clamp_page(limit, offset, default=50, maximum=100)
    f = _filter(
        queue_name or queue, "deadletter", tag, q, job_type, created_after, created_before,
        order_by, order_dir,
    )
    rows, more = await listing.list_jobs(conn, auth, f, page)
    return json_response(rows, headers=has_more_header(more))


@router.post(
    "/jobs/dlq/retry", **doc(DlqRetried, body=RetryDlq, body_required=False, errors=(403,))
)
async def retry_dead_letters(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """deadletter → pending → `{retried_count, retried_jobs, job_ids, skipped_jobs}`."""
    body = await parse_optional_body(request, RetryDlq)
    return json_response(
        await batch.retry_dead_letters(
            conn, state.settings, auth, body.job_ids, body.queue_name, body.limit, state.events
        )
    )


@router.post("/jobs/dlq/purge", **doc(DlqPurged, body=PurgeDlq, errors=(403,)))
async def purge_dead_letters(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """Delete dead-letter jobs; `confirm: true` required → `{purged_count}`. Missing or
    non-boolean `confirm` is 422 and `confirm: false` 400, both saying how to send it (R10)."""
    try:
        body = await parse_body(request, PurgeDlq)
    except ValidationFailed as exc:
        fields = [d["field"] for d in exc.details] if isinstance(exc.details, list) else []
        if "confirm" in fields:
            exc.message = f"confirm: {batch.PURGE_CONFIRM_HINT}"
            for detail in exc.details:
                if detail["field"] == "confirm":
                    detail["message"] = batch.PURGE_CONFIRM_HINT
        raise
    return json_response(
        await batch.purge_dead_letters(
            conn, auth, body.confirm, body.queue_name, body.older_than, body.limit, state.events
        )
    )


@router.get("/jobs/{job_id}", **doc(Job, errors=(404,)))
async def get_job(job_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """The Job object; 404 when missing, another organization's, or out of scope."""
    return json_response(await service.get_job(conn, auth, parse_uuid_id(job_id)))


@router.delete("/jobs/{job_id}", status_code=204, **doc(None, errors=(404, 409)))
async def cancel_job(job_id: str, state: State, conn: Conn, auth: Auth):  # type: ignore[no-untyped-def]
    """pending/scheduled → cancelled (204); 409 in other states."""
    await service.cancel_job(conn, auth, parse_uuid_id(job_id), state.events)
    return empty_response()


@router.post("/jobs/{job_id}/retry", **doc(Job, errors=(404, 409)))
async def retry_job(job_id: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """failed/deadletter → pending with retry_count 0; returns the Job. 409 otherwise; 429
    QUOTA_EXCEEDED past `max_active_jobs`."""
    return json_response(
        await service.retry_job(conn, state.settings, auth, parse_uuid_id(job_id), state.events)
    )


@router.put(
    "/jobs/{job_id}/priority", **doc(PriorityChanged, body=BoostPriority, errors=(404,))
)
async def boost_priority(job_id: str, request: Request, conn: Conn, auth: Auth) -> JSONBody:
    """`{priority}` −100..100 → `{job_id, old_priority, new_priority}`; 404 unless pending/scheduled."""
    body = await parse_body(request, BoostPriority)
    return json_response(await service.set_priority(conn, auth, parse_uuid_id(job_id), body.priority))


@router.post(
    "/jobs/{job_id}/complete", **doc(Acked, body=CompleteJob, errors=(404, 409))
)
async def complete_job(job_id: str, request: Request, state: State, auth: Auth) -> JSONBody:
    """`{worker_id, lease_id, result?}` → `{success: true}`. 409 LEASE_EXPIRED for an expired or
    replaced lease, 409 CONFLICT "Job is already completed" on replay, 404 not found/not owned.
    Applied together with concurrent acks of the organization (jobs/coalesce.py)."""
    body = await parse_body(request, CompleteJob)
    job = parse_uuid_id(job_id)
    if body.result is not None:
        service.check_payload(auth, state.settings, body.result, "result")
    item = ack.AckItem("complete", job, body.worker_id, body.lease_id, body.result)
    await state.acks.submit(auth, item, conflict=job)
    return json_response({"success": True})


@router.post("/jobs/{job_id}/fail", **doc(FailResult, body=FailJob, errors=(404, 409)))
async def fail_job(job_id: str, request: Request, state: State, auth: Auth) -> JSONBody:
    """`{worker_id, lease_id, error}` → `{success: true, will_retry, retry_delay_secs}`;
    retry with backoff (§8.3) or dead-letter. Same 404/409 rules as complete, and coalesced
    the same way."""
    body = await parse_body(request, FailJob, clean=("error",))  # R15: cleaned, not refused
    job = parse_uuid_id(job_id)
    item = ack.AckItem("fail", job, body.worker_id, body.lease_id, error=clean_text(body.error))
    outcome = service.fail_outcome(await state.acks.submit(auth, item, conflict=job))
    return json_response({"success": True, "will_retry": outcome.will_retry,
                          "retry_delay_secs": outcome.retry_delay_secs})


@router.post(
    "/jobs/{job_id}/heartbeat", **doc(HeartbeatResult, body=HeartbeatJob, errors=(404, 409))
)
async def heartbeat_job(job_id: str, request: Request, conn: Conn, auth: Auth) -> JSONBody:
    """`{worker_id, lease_id, lease_duration_secs}` → `{success: true, lease_expires_at}`."""
    body = await parse_body(request, HeartbeatJob)
    expires = await service.heartbeat_job(
        conn, auth, parse_uuid_id(job_id), body.worker_id, body.lease_id, body.lease_duration_secs
    )
    return json_response({"success": True, "lease_expires_at": expires})


@router.get("/jobs/{job_id}/history", **doc(list[HistoryEvent], errors=(400, 404)))
async def job_history(
    job_id: str,
    conn: Conn,
    auth: Auth,
    limit: int | None = Query(None),
    offset: int | None = None,
    order_dir: str | None = None,
) -> JSONBody:
    """History events `[{id, job_id, event_type, worker_id, details, created_at}]` + `X-Has-More`;
    `limit` 1..500 (default 100), oldest first unless `order_dir=desc`."""
    page = clamp_page(limit, offset, default=100, maximum=500)
    direction = (order_dir or "asc").lower()
    if direction not in ("asc", "desc"):
        raise ValidationFailed("order_dir", "must be asc or desc", "enum")
    rows, more = await listing.job_history(conn, auth, parse_uuid_id(job_id), page, direction)
    return json_response(rows, headers=has_more_header(more))


@router.get("/jobs/{job_id}/dependencies", **doc(JobDependencies, errors=(404,)))
async def job_dependencies(job_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """`{job_id, dependency_mode, dependencies_met, dependencies, dependents}`, entries
    `{job_id, queue_name, status, completed, dependency_type}` (CONTRACT §7.6 row 48, R7)."""
    return json_response(await dependencies.get_dependencies(conn, auth, parse_uuid_id(job_id)))


@router.post(
    "/jobs/{job_id}/dependencies",
    **doc(DependenciesAdded, body=AddDependencies, errors=(404, 409)),
)
async def add_job_dependencies(
    job_id: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """`{depends_on | depends_on_job_ids: [id] (1..100), dependency_mode | dependency_type}` →
    `{job_id, dependencies_added, added_count, dependencies_met, dependency_mode, status}`.
    404 when the job or a dependency is missing or out of scope; 409 unless pending/scheduled."""
    body = await parse_body(request, AddDependencies)
    target = parse_uuid_id(job_id)
    ids = [parse_uuid_id(d, "Dependency job") for d in body.depends_on]
    return json_response(
        await dependencies.add_dependencies(
            conn, auth, target, ids, body.dependency_mode, state.events
        )
    )


# Served by core/fastlane.py without FastAPI's router and dependency injection (still listed in
# OpenAPI through the decorators above). Signature parameters are filled by name.
HOT_ROUTES = {
    ("POST", "/api/v1/jobs"): create_job,
    ("POST", "/api/v1/jobs/claim"): claim_jobs,
    ("POST", "/api/v1/jobs/ack"): ack_jobs,
    ("POST", "/api/v1/jobs/{job_id}/complete"): complete_job,
    ("POST", "/api/v1/jobs/{job_id}/fail"): fail_job,
    ("POST", "/api/v1/jobs/{job_id}/heartbeat"): heartbeat_job,
}
