"""Batch acknowledgement: `POST /api/v1/jobs/ack` (CONTRACT §20 D5, issue 8 point 2).

One request, one transaction, one statement (`queries.ACK_JOBS`, array parameters) for up to 100
completes and fails of one worker. `apply` is also what every single complete and fail runs
(`service.complete_job` / `fail_job`, the group commit of jobs/coalesce.py), so each item gets
the single-job rules by construction: the fence (worker, `lease_id` or R1 legacy fencing, unexpired
lease), replays and lost leases reported per item exactly as the single routes would answer
them (404 NOT_FOUND, 409 CONFLICT "Job is already completed", 409 LEASE_EXPIRED), retry with
backoff or the DLQ, history rows, dependents and workflows settled once for the batch, events
(realtime, webhooks) and metrics per item after commit. An item that fails does not stop the
others; a job id given twice is refused for its second occurrence (nothing applied twice).

Answer: `{"results": [{"job_id", "success": true} | {"job_id", "success": false, "code",
"message"}]}`, completed items first, then failed items, each list in request order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import BadRequest, NotFound, SpooledError
from spooled_backend.core.events import Events
from spooled_backend.core.jsonvalue import json_texts
from spooled_backend.core.validators import parse_uuid_id
from spooled_backend.db.onetrip import Bound
from spooled_backend.jobs import dependencies, service
from spooled_backend.jobs import queries as q
from spooled_backend.jobs.schemas import AckJobs
from spooled_backend.observability import metrics, tracing
from spooled_backend.workers import counters

MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class AckItem:
    """One acknowledgement: `kind` "complete" (with `result`) or "fail" (with `error`)."""

    kind: str
    job_id: str
    worker_id: str
    lease_id: str | None
    result: Any = None
    error: str | None = None


Outcome = asyncpg.Record | SpooledError


def _failure(job_id: str, exc: SpooledError) -> dict[str, Any]:
    return {"job_id": job_id, "success": False, "code": exc.code, "message": exc.message}


async def ack_jobs(
    db: Bound, settings: Settings, auth: AuthContext, body: AckJobs, events: Events
) -> dict[str, list[dict[str, Any]]]:
    """Apply the batch as its own transaction; per-item outcomes (module docstring). 400 over
    100 items or none."""
    worker = body.worker_id
    items = [AckItem("complete", c.job_id, worker, c.lease_id, c.result) for c in body.completed]
    items += [AckItem("fail", f.job_id, worker, f.lease_id, error=f.error) for f in body.failed]
    if not items:
        raise BadRequest("Nothing to acknowledge: give at least one completed or failed item")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"At most {MAX_ITEMS} items may be acknowledged at once")
    results: list[dict[str, Any] | None] = [None] * len(items)
    seen: set[str] = set()
    send: list[int] = []
    for index, item in enumerate(items):
        try:
            parse_uuid_id(item.job_id)
            if item.job_id in seen:
                raise BadRequest("job_id appears more than once in this batch")
            seen.add(item.job_id)
            if item.kind == "complete" and item.result is not None:
                service.check_payload(auth, settings, item.result, "result")
        except SpooledError as exc:
            results[index] = _failure(item.job_id, exc)
            continue
        send.append(index)
    if send:
        outcomes = await apply_alone(db, auth, [items[i] for i in send], events)
        for index, outcome in zip(send, outcomes, strict=True):
            job_id = items[index].job_id
            results[index] = (_failure(job_id, outcome) if isinstance(outcome, SpooledError)
                              else {"job_id": job_id, "success": True})
    return {"results": [r for r in results if r is not None]}


async def apply(
    conn: asyncpg.Connection, auth: AuthContext, items: Sequence[AckItem], events: Events
) -> list[Outcome]:
    """`queries.ACK_JOBS` for validated `items` with distinct job ids, all of `auth`'s
    organization and key scope, in the caller's transaction. Per item, in order: the ACK row
    (applied: `new_status`, prior `retry_count`, …) or the SpooledError the single route would
    raise (404/409, `service.ack_refusal`). Events, metrics and worker counters follow each
    applied item after commit; dependents are settled once for all of them."""
    rows = await conn.fetch(q.ACK_JOBS, *_ack_arguments(auth, items))
    return await _settle(conn, auth, items, rows, events)


async def apply_alone(
    db: Bound, auth: AuthContext, items: Sequence[AckItem], events: Events
) -> list[Outcome]:
    """`apply` as a transaction of its own: one round trip (db/onetrip.py), or BEGIN…COMMIT
    when tracing adds statements."""
    if tracing.ENABLED:
        async with db.transaction() as conn:
            return await apply(conn, auth, items, events)
    rows = await db.fetch_alone(q.ACK_JOBS, *_ack_arguments(auth, items))
    return await _settle(None, auth, items, rows, events)


def _ack_arguments(auth: AuthContext, items: Sequence[AckItem]) -> tuple[Any, ...]:
    return (
        auth.organization_id,
        [i.worker_id for i in items],
        [i.job_id for i in items],
        [i.lease_id for i in items],
        json_texts([i.result for i in items]),
        [i.kind for i in items],
        [i.error for i in items],
        auth.scope_filter,
    )


async def _settle(
    conn: asyncpg.Connection | None, auth: AuthContext, items: Sequence[AckItem],
    rows: list[asyncpg.Record], events: Events,
) -> list[Outcome]:
    """Per item its outcome, then the after-commit work (`conn`: for tracing only)."""
    outcomes: list[Outcome] = []
    tally: dict[str, list[int]] = {}  # worker → [processed, failed]
    for item, row in zip(items, rows, strict=True):
        outcome = await _outcome(conn, auth, item, row, events)
        outcomes.append(outcome)
        if not isinstance(outcome, SpooledError):
            counts = tally.setdefault(item.worker_id, [0, 0])
            counts[0 if row["new_status"] == "completed" else 1] += 1
    if rows:
        dependencies.emit(events, rows[0]["settled"])
    for worker_id, (processed, failed) in tally.items():
        counters.count_after_commit(auth.organization_id, worker_id,
                                    processed=processed, failed=failed)
    return outcomes


async def _outcome(
    conn: asyncpg.Connection | None, auth: AuthContext, item: AckItem, row: asyncpg.Record,
    events: Events,
) -> Outcome:
    if item.lease_id is None:  # counted whether or not it applies, like the single routes
        metrics.LEGACY_ACKS.labels(operation=item.kind).inc()
    if row["new_status"] is None:
        try:
            service.ack_refusal(row if row["status"] is not None else None, item.worker_id,
                                item.lease_id)
        except SpooledError as exc:
            return exc
        return NotFound("Job not found")  # pragma: no cover - ack_refusal always raises
    org, queue, job_id = auth.organization_id, row["queue_name"], item.job_id
    acked = row["acked_at"]
    if item.kind == "complete":
        duration = max((acked - (row["started_at"] or acked)).total_seconds(), 0.0)
        metrics.JOBS_COMPLETED.inc(queue=queue, organization=org)
        metrics.JOB_DURATION.observe(duration, queue=queue, organization=org)
        if conn is not None and tracing.ENABLED:  # conn: only when tracing (apply_alone)
            await tracing.job_finished(conn, org, job_id, queue, "complete", row["started_at"],
                                       worker_id=item.worker_id)
        events.job_completed(org, job_id, queue, int(duration * 1000), item.result)
    else:
        new_status = row["new_status"]
        metrics.JOBS_FAILED.inc(queue=queue, organization=org)
        if new_status != "pending":
            metrics.JOBS_DEADLETTERED.inc(queue=queue, organization=org)
        if conn is not None and tracing.ENABLED:  # conn: only when tracing (apply_alone)
            await tracing.job_finished(conn, org, job_id, queue, "fail", row["started_at"],
                                       new_status=new_status)
        events.job_failed(org, job_id, queue, item.error or "", row["new_retry_count"], new_status)
    return row
