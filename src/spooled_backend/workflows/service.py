"""Workflow rules: create a DAG of jobs in one transaction, list, get with progress, cancel,
retry (CONTRACT §7.11, §9.4). Job-level release/cancel and the workflow's counters, status
and `workflow.completed`/`workflow.failed` events come from `jobs.dependencies`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import BadRequest, Conflict, NotFound
from spooled_backend.core.events import Events
from spooled_backend.core.jsonvalue import check_storable, json_size, json_texts
from spooled_backend.core.pagination import Page
from spooled_backend.jobs import dependencies
from spooled_backend.jobs.service import check_payload
from spooled_backend.observability import metrics
from spooled_backend.organizations import quotas
from spooled_backend.workflows import queries as q
from spooled_backend.workflows.schemas import CreateWorkflow, WorkflowJobIn

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
METADATA_MAX_BYTES = 65536


def _names(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as `[k1, k2, …, k1]` (k1 waits for k2 …), or None. Iterative DFS:
    1,000-node chains do not hit the recursion limit."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in deps:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            children = deps.get(node, [])
            if i < len(children):
                stack[-1] = (node, i + 1)
                nxt = children[i]
                if state.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if not state.get(nxt):
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def check_graph(jobs: Sequence[WorkflowJobIn]) -> list[str]:
    """Validate the graph (400 BadRequest naming the offending keys) and return the keys in a
    topological order (parents first). Rules: unique keys, no self-dependency, known keys only,
    no cycle."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for job in jobs:
        if job.key in seen and job.key not in duplicates:
            duplicates.append(job.key)
        seen.add(job.key)
    if duplicates:
        raise BadRequest(f"Duplicate job keys in workflow: {_names(duplicates)}")
    selfish = [j.key for j in jobs if j.key in (j.depends_on or [])]
    if selfish:
        raise BadRequest(f"A job cannot depend on itself: {_names(selfish)}")
    unknown = sorted({d for j in jobs for d in (j.depends_on or []) if d not in seen})
    if unknown:
        raise BadRequest(f"Unknown dependency keys: {_names(unknown)}")
    deps = {j.key: list(dict.fromkeys(j.depends_on or [])) for j in jobs}
    cycle = find_cycle(deps)
    if cycle:
        raise BadRequest(f"Workflow has a dependency cycle: {' -> '.join(cycle)}")
    # Kahn's algorithm, stable in the request order
    waiting = {k: len(v) for k, v in deps.items()}
    children: dict[str, list[str]] = {k: [] for k in deps}
    for k, parents in deps.items():
        for p in parents:
            children[p].append(k)
    order = [j.key for j in jobs if waiting[j.key] == 0]
    i = 0
    while i < len(order):
        for c in children[order[i]]:
            waiting[c] -= 1
            if waiting[c] == 0:
                order.append(c)
        i += 1
    return order


async def create_workflow(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, body: CreateWorkflow,
    events: Events,
) -> dict[str, Any]:
    """All-or-nothing: the workflow row, its jobs and edges in the caller's transaction.

    → `{workflow_id, job_ids: [{key, job_id}], status}`. Raises BadRequest (graph rules,
    metadata), AccessDenied (queue scope), PayloadTooLarge, FeatureDisabled (plan without
    workflows), QuotaExceeded (`workflows`, `queues`, `active_jobs`, `jobs_per_day`).
    """
    order = check_graph(body.jobs)
    for job in body.jobs:
        auth.require_queue(job.queue_name)
    for index, job in enumerate(body.jobs):
        check_payload(auth, settings, job.payload, f"jobs.{index}.payload")
        if job.tags is not None:
            check_storable(job.tags, f"jobs.{index}.tags")
            if json_size(job.tags) > 65536:
                raise BadRequest(f"jobs.{index}.tags must be at most 64 KiB")
    if body.metadata is not None:
        check_storable(body.metadata, "metadata")
        if json_size(body.metadata) > METADATA_MAX_BYTES:
            raise BadRequest("metadata must be at most 64 KiB")

    by_key = {j.key: j for j in body.jobs}
    ids = {k: str(uuid.uuid4()) for k in by_key}
    parents_of = {k: list(dict.fromkeys(by_key[k].depends_on or [])) for k in by_key}
    has_dependents = {p for ps in parents_of.values() for p in ps}
    rows = [by_key[k] for k in order]

    async with conn.transaction():
        await quotas.reserve(conn, settings, auth, "workflows", 1)
        await quotas.reserve_jobs(conn, settings, auth, sorted({j.queue_name for j in rows}), len(rows))
        wf = await conn.fetchrow(
            q.INSERT_WORKFLOW, auth.organization_id, body.name, body.description, body.metadata,
            len(rows),
        )
        workflow_id: str = wf["id"]
        inserted = await conn.fetch(
            q.INSERT_WORKFLOW_JOBS,
            auth.organization_id,
            workflow_id,
            [ids[j.key] for j in rows],
            [j.queue_name for j in rows],
            json_texts([j.payload for j in rows]),
            [j.priority or 0 for j in rows],
            [j.max_retries for j in rows],
            [j.timeout_seconds for j in rows],
            [j.expires_at for j in rows],
            [j.key for j in rows],
            [j.dependency_mode or "all" for j in rows],
            [not parents_of[j.key] for j in rows],
            [j.key in has_dependents for j in rows],
            list(range(len(rows))),
            json_texts([j.tags for j in rows]),
            settings.queue_default_max_retries,
            settings.queue_default_timeout_secs,
        )
        edges = [(ids[k], ids[p], by_key[k].dependency_mode or "all")
                 for k in order for p in parents_of[k]]
        if edges:
            await conn.execute(
                q.INSERT_EDGES, auth.organization_id, [e[0] for e in edges], [e[1] for e in edges],
                [e[2] for e in edges],
            )
    for row in inserted:
        metrics.JOBS_ENQUEUED.inc(queue=row["queue_name"], organization=auth.organization_id)
        events.job_created(auth.organization_id, row["id"], row["queue_name"], row["priority"], row["status"])
    return {
        "workflow_id": workflow_id,
        "job_ids": [{"key": j.key, "job_id": ids[j.key]} for j in body.jobs],
        "status": wf["status"],
    }


def workflow_out(row: asyncpg.Record) -> dict[str, Any]:
    """WorkflowResponse (CONTRACT §7.11)."""
    total = int(row["total_jobs"])
    completed = int(row["completed_jobs"])
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "total_jobs": total,
        "completed_jobs": completed,
        "failed_jobs": int(row["failed_jobs"]),
        "progress_percent": round(completed / total * 100.0, 2) if total else 0.0,
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "metadata": row["metadata"],
    }


def job_out(row: asyncpg.Record) -> dict[str, Any]:
    """WorkflowJob (CONTRACT §7.11): the job in the Node SDK's shape, plus our names."""
    error = None
    if row["last_error"] is not None:
        error = {"type": "JobError", "message": row["last_error"], "stack": None}
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "key": row["workflow_key"],
        "queue": row["queue_name"],
        "queue_name": row["queue_name"],
        "job_type": "job",
        "payload": row["payload"],
        "status": row["status"],
        "priority": row["priority"],
        "attempt": row["retry_count"],
        "retry_count": row["retry_count"],
        "max_retries": row["max_retries"],
        "backoff_type": "exponential",
        "timeout_ms": row["timeout_seconds"] * 1000,
        "timeout_seconds": row["timeout_seconds"],
        "created_at": row["created_at"],
        "scheduled_at": row["scheduled_at"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "failed_at": None,
        "next_retry_at": None,
        "result": row["result"],
        "error": error,
        "metadata": row["tags"],
        "workflow_id": row["workflow_id"],
        "parent_job_id": row["parent_job_id"],
        "depends_on": list(row["depends_on"]),
        "dependency_mode": row["dependency_mode"],
        "dependencies_met": row["dependencies_met"],
    }


async def list_workflows(
    conn: asyncpg.Connection, auth: AuthContext, status: str | None, page: Page
) -> list[dict[str, Any]]:
    """Newest first; an unknown `status` filter is ignored (CONTRACT §5, §7.11)."""
    wanted = status if status in STATUSES else None
    rows = await conn.fetch(
        q.LIST_WORKFLOWS, auth.organization_id, wanted, page.limit, page.offset, auth.scope_filter
    )
    return [workflow_out(r) for r in rows]


async def _workflow_row(conn: asyncpg.Connection, auth: AuthContext, workflow_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(q.GET_WORKFLOW, workflow_id, auth.organization_id, auth.scope_filter)
    if row is None:
        raise NotFound("Workflow not found")
    return row


async def get_workflow(conn: asyncpg.Connection, auth: AuthContext, workflow_id: str) -> dict[str, Any]:
    """WorkflowDetail: the WorkflowResponse fields plus `organization_id`, `jobs`,
    `dependencies` (edges) and `progress {total, completed, failed, pending, processing}`."""
    row = await _workflow_row(conn, auth, workflow_id)
    jobs = await conn.fetch(q.WORKFLOW_JOBS, workflow_id, auth.organization_id, None)
    edges = await conn.fetch(q.WORKFLOW_EDGES, workflow_id, auth.organization_id)
    out = workflow_out(row)
    counts = {s: 0 for s in ("pending", "scheduled", "processing", "completed", "failed",
                             "deadletter", "cancelled")}
    for j in jobs:
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    out.update({
        "organization_id": row["organization_id"],
        "jobs": [job_out(j) for j in jobs],
        "dependencies": [dict(e) for e in edges],
        "progress": {
            "total": len(jobs),
            "completed": counts["completed"],
            "failed": counts["failed"] + counts["deadletter"] + counts["cancelled"],
            "pending": counts["pending"] + counts["scheduled"],
            "processing": counts["processing"],
        },
    })
    return out


async def list_workflow_jobs(
    conn: asyncpg.Connection, auth: AuthContext, workflow_id: str
) -> list[dict[str, Any]]:
    """`GET /workflows/{id}/jobs` (Node SDK): `[WorkflowJob]` in topological order."""
    await _workflow_row(conn, auth, workflow_id)
    return [job_out(j) for j in await conn.fetch(q.WORKFLOW_JOBS, workflow_id, auth.organization_id, None)]


async def get_workflow_job(
    conn: asyncpg.Connection, auth: AuthContext, workflow_id: str, job_id: str
) -> dict[str, Any]:
    """`GET /workflows/{id}/jobs/{job_id}` (Node SDK): one WorkflowJob; 404 when the job is
    not part of this workflow."""
    await _workflow_row(conn, auth, workflow_id)
    rows = await conn.fetch(q.WORKFLOW_JOBS, workflow_id, auth.organization_id, job_id)
    if not rows:
        raise NotFound("Job not found in this workflow")
    return job_out(rows[0])


async def workflow_job_statuses(
    conn: asyncpg.Connection, auth: AuthContext, workflow_id: str
) -> list[dict[str, Any]]:
    """`GET /workflows/{id}/jobs/status` (Node SDK): `[{job_id, key, status, progress}]`,
    progress 100 for completed jobs, else 0."""
    jobs = await list_workflow_jobs(conn, auth, workflow_id)
    return [
        {"job_id": j["id"], "key": j["key"], "status": j["status"],
         "progress": 100.0 if j["status"] == "completed" else 0.0}
        for j in jobs
    ]


async def cancel_workflow(
    conn: asyncpg.Connection, auth: AuthContext, workflow_id: str, events: Events
) -> dict[str, Any]:
    """→ cancelled (terminal); its pending/scheduled jobs are cancelled, processing ones run to
    completion without changing the workflow's status. 409 for a completed workflow; a
    cancelled one answers as it is."""
    await _workflow_row(conn, auth, workflow_id)
    async with conn.transaction():
        # jobs before the workflow row: a job completing meanwhile locks them in that order
        await conn.execute(q.LOCK_WAITING_JOBS, workflow_id, auth.organization_id)
        locked = await conn.fetchrow(q.LOCK_WORKFLOW, workflow_id, auth.organization_id)
        if locked["status"] == "completed":
            raise Conflict("Workflow is already completed")
        if locked["status"] != "cancelled":
            await conn.execute(q.MARK_CANCELLED, workflow_id, auth.organization_id)
            rows = await conn.fetch(q.CANCEL_WORKFLOW, workflow_id, auth.organization_id)
            for r in rows:
                events.job_status(auth.organization_id, r["id"], r["queue_name"], r["old_status"], "cancelled")
            if rows:
                dependencies.emit(events, rows[0]["settled"])
    return workflow_out(await _workflow_row(conn, auth, workflow_id))


async def retry_workflow(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, workflow_id: str,
    events: Events,
) -> dict[str, Any]:
    """failed → running: failed/dead-lettered/cancelled jobs back to pending (retry_count 0,
    errors and timestamps cleared), gates recomputed (roots run at once, dependents wait for
    them again). 400 when the workflow is not failed or has nothing to retry; 429 when the
    restored jobs would exceed `max_active_jobs`. Row-locked against concurrent retries."""
    await _workflow_row(conn, auth, workflow_id)
    async with conn.transaction():
        locked = await conn.fetchrow(q.LOCK_WORKFLOW, workflow_id, auth.organization_id)
        if locked["status"] != "failed":
            raise BadRequest(
                f"Nothing to retry: only failed workflows can be retried, this one is {locked['status']}"
            )
        rows = await conn.fetch(q.RETRY_WORKFLOW_JOBS, workflow_id, auth.organization_id)
        if not rows:
            raise BadRequest("Nothing to retry: the workflow has no failed, dead-lettered or cancelled jobs")
        await quotas.check_active_jobs_after(conn, settings, auth, len(rows))
        ids = [r["id"] for r in rows]
        await dependencies.settle(conn, events, ids, ids)
    for r in rows:
        metrics.JOBS_RETRIED.inc(queue=r["queue_name"], organization=auth.organization_id)
        events.job_status(auth.organization_id, r["id"], r["queue_name"], r["old_status"], "pending")
    return workflow_out(await _workflow_row(conn, auth, workflow_id))
