"""Batch acknowledgement: `POST /api/v1/jobs/ack` (CONTRACT §20 D5, issue 8 point 2).

One request, one transaction, one statement (`queries.ACK_JOBS`, array parameters) for up to 100
completes and fails of one worker. Every item follows the single-job rules of `service.
complete_job` / `service.fail_job`: the fence (worker, `lease_id` or R1 legacy fencing, unexpired
lease), replays and lost leases reported per item exactly as the single routes would answer
them (404 NOT_FOUND, 409 CONFLICT "Job is already completed", 409 LEASE_EXPIRED), retry with
backoff or the DLQ, history rows, dependents and workflows settled once for the batch, events
(realtime, webhooks) and metrics per item after commit. An item that fails does not stop the
others; a job id given twice is refused for its second occurrence (nothing applied twice).

Answer: `{"results": [{"job_id", "success": true} | {"job_id", "success": false, "code",
"message"}]}`, completed items first, then failed items, each list in request order.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import BadRequest, NotFound, SpooledError
from spooled_backend.core.events import Events
from spooled_backend.core.validators import parse_uuid_id
from spooled_backend.jobs import dependencies, service
from spooled_backend.jobs import queries as q
from spooled_backend.jobs.schemas import AckJobs
from spooled_backend.observability import metrics, tracing
from spooled_backend.workers import counters

MAX_ITEMS = 100


def _failure(job_id: str, exc: SpooledError) -> dict[str, Any]:
    return {"job_id": job_id, "success": False, "code": exc.code, "message": exc.message}


async def ack_jobs(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, body: AckJobs, events: Events
) -> dict[str, list[dict[str, Any]]]:
    """Apply the batch; per-item outcomes (module docstring). 400 over 100 items or none."""
    items = [("complete", c.job_id, c.lease_id, c.result, None) for c in body.completed]
    items += [("fail", f.job_id, f.lease_id, None, f.error) for f in body.failed]
    if not items:
        raise BadRequest("Nothing to acknowledge: give at least one completed or failed item")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"At most {MAX_ITEMS} items may be acknowledged at once")
    results: list[dict[str, Any] | None] = [None] * len(items)
    seen: set[str] = set()
    send: list[int] = []
    for index, (kind, job_id, _lease, result, _error) in enumerate(items):
        try:
            parse_uuid_id(job_id)
            if job_id in seen:
                raise BadRequest("job_id appears more than once in this batch")
            seen.add(job_id)
            if kind == "complete" and result is not None:
                service.check_payload(auth, settings, result, "result")
        except SpooledError as exc:
            results[index] = _failure(job_id, exc)
            continue
        send.append(index)
    if send:
        rows = await conn.fetch(
            q.ACK_JOBS,
            auth.organization_id,
            body.worker_id,
            [items[i][1] for i in send],
            [items[i][2] for i in send],
            [items[i][3] for i in send],
            [items[i][0] for i in send],
            [items[i][4] for i in send],
            auth.scope_filter,
        )
        for row in rows:
            index = send[row["ord"] - 1]
            results[index] = await _outcome(conn, auth, body.worker_id, items[index], row, events)
        if rows:
            dependencies.emit(events, rows[0]["settled"])
            done = [r for r in rows if r["new_status"] is not None]
            processed = sum(1 for r in done if r["new_status"] == "completed")
            counters.count_after_commit(auth.organization_id, body.worker_id,
                                        processed=processed, failed=len(done) - processed)
    return {"results": [r for r in results if r is not None]}


async def _outcome(
    conn: asyncpg.Connection, auth: AuthContext, worker_id: str,
    item: tuple[str, str, str | None, Any, str | None], row: asyncpg.Record, events: Events,
) -> dict[str, Any]:
    kind, job_id, lease_id, result, error = item
    if row["new_status"] is None:
        try:
            service.ack_refusal(row if row["status"] is not None else None, worker_id, lease_id)
        except SpooledError as exc:
            return _failure(job_id, exc)
        return _failure(job_id, NotFound("Job not found"))  # pragma: no cover - always raises
    org, queue = auth.organization_id, row["queue_name"]
    if lease_id is None:
        metrics.LEGACY_ACKS.labels(operation=kind).inc()
    acked = row["acked_at"]
    if kind == "complete":
        duration = max((acked - (row["started_at"] or acked)).total_seconds(), 0.0)
        metrics.JOBS_COMPLETED.inc(queue=queue, organization=org)
        metrics.JOB_DURATION.observe(duration, queue=queue, organization=org)
        if tracing.ENABLED:
            await tracing.job_finished(conn, org, job_id, queue, "complete", row["started_at"],
                                       worker_id=worker_id)
        events.job_completed(org, job_id, queue, int(duration * 1000), result)
    else:
        new_status = row["new_status"]
        metrics.JOBS_FAILED.inc(queue=queue, organization=org)
        if new_status != "pending":
            metrics.JOBS_DEADLETTERED.inc(queue=queue, organization=org)
        if tracing.ENABLED:
            await tracing.job_finished(conn, org, job_id, queue, "fail", row["started_at"],
                                       new_status=new_status)
        events.job_failed(org, job_id, queue, error or "", row["new_retry_count"], new_status)
    return {"job_id": job_id, "success": True}
