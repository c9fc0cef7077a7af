"""REST routes for workers (CONTRACT §6 #60–64, §7.9)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.openapi import Empty, doc
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.workers import counters, service
from spooled_backend.workers.schemas import (
    RegisterWorker,
    Worker,
    WorkerHeartbeat,
    WorkerRegistered,
    WorkerSummary,
)

router = APIRouter(prefix="/api/v1", tags=["workers"])


@router.get("/workers", **doc(list[WorkerSummary]))
async def list_workers(conn: Conn, auth: Auth) -> JSONBody:
    """`[WorkerSummary]` = `[{id, queue_name, hostname, status, current_jobs, max_concurrency,
    last_heartbeat, jobs_processed, jobs_failed}]`, newest heartbeat first, at most 100."""
    await counters.flush_org(conn, auth.organization_id)  # exact counts (workers/counters.py)
    return json_response(await service.list_workers(conn, auth))


@router.post(
    "/workers/register", status_code=201,
    **doc(WorkerRegistered, body=RegisterWorker, errors=(403, 409)),
)
async def register_worker(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """201 `{id, queue_name, lease_duration_secs, heartbeat_interval_secs}`; 403 scope,
    409 id owned by another organization, 429 QUOTA_EXCEEDED (`workers`)."""
    body = await parse_body(request, RegisterWorker)
    return json_response(
        await service.register_worker(conn, state.settings, auth, body, state.events), status=201
    )


@router.get("/workers/{worker_id}", **doc(Worker, errors=(404,)))
async def get_worker(worker_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """The Worker object; 404 when unknown or out of scope."""
    await counters.flush_org(conn, auth.organization_id, worker_id)
    return json_response(await service.get_worker(conn, auth, worker_id))


@router.post(
    "/workers/{worker_id}/heartbeat", **doc(Empty, body=WorkerHeartbeat, errors=(404,))
)
async def heartbeat_worker(
    worker_id: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """`{current_jobs, status?, metadata?}` → 200 `{}` (the SDK cannot parse an empty JSON body)."""
    body = await parse_body(request, WorkerHeartbeat)
    await service.heartbeat_worker(
        conn, auth, worker_id, body.current_jobs, body.status, body.metadata, state.events
    )
    return json_response({})


@router.post(
    "/workers/{worker_id}/deregister", status_code=204, **doc(None, errors=(404,))
)
async def deregister_worker(worker_id: str, state: State, conn: Conn, auth: Auth) -> Response:
    """204 (body ignored); the worker goes offline and only its expired leases are released."""
    await counters.flush_org(conn, auth.organization_id, worker_id)
    await service.deregister_worker(conn, auth, worker_id, state.events)
    return empty_response()
