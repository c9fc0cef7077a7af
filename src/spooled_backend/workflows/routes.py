"""Workflows REST routes (CONTRACT §6 #74–81, §7.11): parse, call the service, shape the answer.

`/workflows/{id}/jobs/status` is registered before `/workflows/{id}/jobs/{job_id}` so it wins.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.openapi import doc
from spooled_backend.core.pagination import clamp_page
from spooled_backend.core.responses import JSONBody, json_response
from spooled_backend.core.validators import parse_uuid_id
from spooled_backend.workflows import service
from spooled_backend.workflows.schemas import (
    CreateWorkflow,
    CreateWorkflowOut,
    WorkflowDetailOut,
    WorkflowJobOut,
    WorkflowJobStatusOut,
    WorkflowOut,
)

router = APIRouter(prefix="/api/v1", tags=["workflows"])

def _workflow_id(raw: str) -> str:
    return parse_uuid_id(raw, "Workflow")


@router.get("/workflows", **doc(list[WorkflowOut]))
async def list_workflows(
    conn: Conn, auth: Auth, status: str | None = None, limit: int | None = None,
    offset: int | None = None,
) -> JSONBody:
    """`[WorkflowResponse]` newest first; `status` filter (unknown values ignored), `limit`
    1..100 (50), `offset`. Scoped keys see workflows whose jobs are all in their queues."""
    page = clamp_page(limit, offset, default=50, maximum=100)
    return json_response(await service.list_workflows(conn, auth, status, page))


@router.post(
    "/workflows",
    **doc(CreateWorkflowOut, body=CreateWorkflow, errors=(403,),
          description="400 invalid graph (duplicate, unknown or self keys, a cycle); 403 "
          "FEATURE_DISABLED or queue scope; 429 QUOTA_EXCEEDED (workflows, queues, active_jobs, "
          "jobs_per_day)."),
)
async def create_workflow(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """Create the workflow and all its jobs in one transaction → **200** `{workflow_id, job_ids:
    [{key, job_id}], status}` (CONTRACT §1: B answers 200). Jobs without `depends_on` are
    claimable at once; the others wait (`dependencies_met=false`). Up to 1,000 jobs."""
    body = await parse_body(request, CreateWorkflow)
    return json_response(await service.create_workflow(conn, state.settings, auth, body, state.events))


@router.get("/workflows/{workflow_id}", **doc(WorkflowDetailOut, errors=(404,)))
async def get_workflow(workflow_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """WorkflowDetail: the WorkflowResponse fields plus `jobs`, `dependencies` and `progress`."""
    return json_response(await service.get_workflow(conn, auth, _workflow_id(workflow_id)))


@router.post("/workflows/{workflow_id}/cancel", **doc(WorkflowOut, errors=(404, 409)))
async def cancel_workflow(workflow_id: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """→ cancelled; pending/scheduled jobs cancelled, processing jobs run to completion."""
    return json_response(
        await service.cancel_workflow(conn, auth, _workflow_id(workflow_id), state.events)
    )


@router.post("/workflows/{workflow_id}/retry", **doc(WorkflowOut, errors=(400, 404)))
async def retry_workflow(workflow_id: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """failed → running: failed/dead-lettered/cancelled jobs back to pending, gates recomputed."""
    return json_response(
        await service.retry_workflow(conn, state.settings, auth, _workflow_id(workflow_id), state.events)
    )


@router.get("/workflows/{workflow_id}/jobs", **doc(list[WorkflowJobOut], errors=(404,)))
async def list_workflow_jobs(workflow_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """`[WorkflowJob]` (Node SDK, CONTRACT §19 row 16), parents before children."""
    return json_response(await service.list_workflow_jobs(conn, auth, _workflow_id(workflow_id)))


@router.get(
    "/workflows/{workflow_id}/jobs/status", **doc(list[WorkflowJobStatusOut], errors=(404,))
)
async def workflow_job_statuses(workflow_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """`[{job_id, key, status, progress}]` (Node SDK)."""
    return json_response(await service.workflow_job_statuses(conn, auth, _workflow_id(workflow_id)))


@router.get("/workflows/{workflow_id}/jobs/{job_id}", **doc(WorkflowJobOut, errors=(404,)))
async def get_workflow_job(workflow_id: str, job_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """One WorkflowJob (Node SDK); 404 when the job is not in this workflow."""
    return json_response(
        await service.get_workflow_job(conn, auth, _workflow_id(workflow_id), parse_uuid_id(job_id))
    )
