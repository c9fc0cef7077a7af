"""Schedules REST routes (CONTRACT §6 #65–73, §7.10): parse, call the service, shape the answer.

Every write that changes when a schedule is due wakes this process's firing loop after the
commit (other replicas are woken by the service's NOTIFY).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spooled_backend.core import tenancy
from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.openapi import doc
from spooled_backend.core.pagination import clamp_page
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.core.state import AppState
from spooled_backend.core.validators import valid_queue_name
from spooled_backend.schedules import service
from spooled_backend.schedules.schemas import (
    CreateSchedule,
    ScheduleOut,
    ScheduleRunOut,
    TriggerOut,
    UpdateSchedule,
)

router = APIRouter(prefix="/api/v1", tags=["schedules"])


def _wake(state: AppState) -> None:
    tenancy.after_commit(state.schedule_wake.set)


@router.get("/schedules", **doc(list[ScheduleOut], errors=(400,)))
async def list_schedules(
    conn: Conn,
    auth: Auth,
    queue_name: str | None = None,
    is_active: bool | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> JSONBody:
    """`[Schedule]` newest first, in the key's queue scope. `limit` 1..500 (default 100),
    `offset`, `queue_name`, `is_active` (true/false)."""
    page = clamp_page(limit, offset, default=100, maximum=500)
    if queue_name is not None:
        valid_queue_name(queue_name)
    return json_response(await service.list_schedules(conn, auth, queue_name, is_active, page))


@router.post(
    "/schedules", status_code=201, **doc(ScheduleOut, body=CreateSchedule, errors=(403,))
)
async def create_schedule(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """201 Schedule (a superset of the contract's `{id, name, cron_expression, next_run_at}`).
    400 bad cron/timezone/template, 403 queue scope, 413 template, 429 quota."""
    body = await parse_body(request, CreateSchedule)
    created = await service.create_schedule(conn, state.settings, auth, body)
    _wake(state)
    return json_response(created, status=201)


@router.get("/schedules/{schedule_id}", **doc(ScheduleOut, errors=(404,)))
async def get_schedule(schedule_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """200 Schedule; 404 unknown / out of scope."""
    return json_response(await service.get_schedule(conn, auth, schedule_id))


@router.put(
    "/schedules/{schedule_id}", **doc(ScheduleOut, body=UpdateSchedule, errors=(404,))
)
async def update_schedule(
    schedule_id: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """200 Schedule. Any create field plus `is_active`; `queue_name` is ignored."""
    body = await parse_body(request, UpdateSchedule)
    updated = await service.update_schedule(conn, state.settings, auth, schedule_id, body)
    _wake(state)
    return json_response(updated)


@router.delete("/schedules/{schedule_id}", status_code=204, **doc(None, errors=(404,)))
async def delete_schedule(schedule_id: str, conn: Conn, auth: Auth) -> Response:
    """204; 404 unknown."""
    await service.delete_schedule(conn, auth, schedule_id)
    return empty_response()


@router.post("/schedules/{schedule_id}/pause", **doc(ScheduleOut, errors=(404,)))
async def pause_schedule(schedule_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """No body (ignored) → 200 Schedule with `is_active: false`, `next_run_at` kept."""
    return json_response(await service.pause_schedule(conn, auth, schedule_id))


@router.post("/schedules/{schedule_id}/resume", **doc(ScheduleOut, errors=(404,)))
async def resume_schedule(schedule_id: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """No body → 200 Schedule, `is_active: true`, `next_run_at` from now; 429 schedules cap."""
    resumed = await service.resume_schedule(conn, state.settings, auth, schedule_id)
    _wake(state)
    return json_response(resumed)


@router.post(
    "/schedules/{schedule_id}/trigger", **doc(TriggerOut, errors=(404, 413))
)
async def trigger_schedule(schedule_id: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """No body → 200 `{job_id, triggered_at}`; 429 daily quota, 413 payload, 404 unknown."""
    return json_response(
        await service.trigger_schedule(conn, state.settings, auth, schedule_id, state.events)
    )


@router.get(
    "/schedules/{schedule_id}/history", **doc(list[ScheduleRunOut], errors=(400, 404))
)
async def schedule_history(
    schedule_id: str, conn: Conn, auth: Auth, limit: int | None = None, offset: int | None = None
) -> JSONBody:
    """Runs newest first: `[{id, schedule_id, job_id?, status, error_message?, started_at,
    completed_at?, job_status?}]`; `limit` 1..500 (default 50)."""
    page = clamp_page(limit, offset, default=50, maximum=500)
    return json_response(await service.schedule_history(conn, auth, schedule_id, page))
