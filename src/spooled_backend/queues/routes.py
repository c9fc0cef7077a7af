"""REST routes for queues (CONTRACT §6 #53–59, §7.8). Queue names in paths may contain '.';
a name that breaks the queue-name rule answers 400 VALIDATION_ERROR before any lookup."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spooled_backend.core.body import parse_body, parse_optional_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.openapi import doc
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.core.validators import valid_queue_name
from spooled_backend.queues import service
from spooled_backend.queues.schemas import (
    PauseQueue,
    QueueConfig,
    QueuePaused,
    QueueResumed,
    QueueStats,
    QueueSummary,
    UpdateQueueConfig,
)

router = APIRouter(prefix="/api/v1", tags=["queues"])


def _name(name: str) -> str:
    return valid_queue_name(name, "queue_name")


@router.get("/queues", **doc(list[QueueSummary]))
async def list_queues(state: State, conn: Conn, auth: Auth) -> JSONBody:
    """`[{queue_name, max_retries, default_timeout, rate_limit, enabled}]`: configured and
    implicit queues in the key's scope, by name, at most 100."""
    return json_response(await service.list_queues(conn, state.settings, auth))


@router.get("/queues/{name}", **doc(QueueConfig, errors=(400, 404)))
async def get_queue(name: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """QueueConfig `{id, organization_id, queue_name, max_retries, default_timeout, rate_limit,
    enabled, settings, created_at, updated_at}`; 404 unknown / out of scope."""
    return json_response(await service.get_queue(conn, state.settings, auth, _name(name)))


@router.put(
    "/queues/{name}/config", **doc(QueueConfig, body=UpdateQueueConfig, errors=(403,))
)
async def update_queue_config(
    name: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """Upsert `{max_retries?, default_timeout?, rate_limit? (jobs/s), enabled?, settings?}` →
    QueueConfig. 400/422 bad body, 403 scope, 429 QUOTA_EXCEEDED for a new queue over the cap."""
    queue = _name(name)
    body = await parse_body(request, UpdateQueueConfig)
    return json_response(await service.update_config(conn, state.settings, auth, queue, body))


@router.get("/queues/{name}/stats", **doc(QueueStats, errors=(400, 404)))
async def queue_stats(name: str, conn: Conn, auth: Auth) -> JSONBody:
    """Counts and timings of one queue (CONTRACT §7.8)."""
    return json_response(await service.queue_stats(conn, auth, _name(name)))


@router.post(
    "/queues/{name}/pause",
    **doc(QueuePaused, body=PauseQueue, body_required=False, errors=(403, 404)),
)
async def pause_queue(
    name: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """Optional body `{reason?}` (≤500 chars) → `{queue_name, paused: true, paused_at, reason?}`;
    404 unknown queue, 403 scope."""
    queue = _name(name)
    body = await parse_optional_body(request, PauseQueue)
    return json_response(await service.pause_queue(conn, state.settings, auth, queue, body.reason))


@router.post("/queues/{name}/resume", **doc(QueueResumed, errors=(400, 403, 404)))
async def resume_queue(name: str, conn: Conn, auth: Auth) -> JSONBody:
    """No body (ignored) → `{queue_name, resumed: true, paused_duration_secs}`; 404 unknown."""
    return json_response(await service.resume_queue(conn, auth, _name(name)))


@router.delete(
    "/queues/{name}", status_code=204, **doc(None, errors=(400, 403, 404, 409))
)
async def delete_queue(name: str, conn: Conn, auth: Auth, delete_jobs: bool = False) -> Response:
    """204. `?delete_jobs=true` also deletes the queue's jobs and DLQ rows; 409/404 per §7.8."""
    await service.delete_queue(conn, auth, _name(name), delete_jobs)
    return empty_response()
