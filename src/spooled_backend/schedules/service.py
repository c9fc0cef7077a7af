"""Schedule rules: create, list, get, update, delete, pause, resume, trigger, history, and one
cron fire (CONTRACT §7.10, §9.3, §12.2).

Functions take a connection (the request or the loop owns the transaction) and import no web
framework. Writes that change when a schedule is next due also `pg_notify` the firing loops of
every replica (schedules/tasks.py), delivered when the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import BadRequest, NotFound, SpooledError, ValidationFailed
from spooled_backend.core.events import Events
from spooled_backend.core.jsonvalue import check_storable, json_size
from spooled_backend.core.pagination import Page
from spooled_backend.core.validators import parse_uuid_id
from spooled_backend.jobs import service as jobs
from spooled_backend.organizations import quotas
from spooled_backend.schedules import cron
from spooled_backend.schedules import queries as q
from spooled_backend.schedules.schemas import CreateSchedule, UpdateSchedule

MAX_SIDE_JSON_BYTES = 65536  # tags, metadata
ERROR_MESSAGE_MAX = 2000


def _check_template(auth: AuthContext, settings: Settings, template: Any) -> None:
    """Any JSON but null, within the 1 MiB cap and the plan's payload cap (413)."""
    if template is None:
        raise ValidationFailed(
            "payload_template", "must be a JSON value, not null (it becomes each job's payload)",
            "required",
        )
    jobs.check_payload(auth, settings, template, "payload_template")


def _check_side_json(value: Any, field: str) -> None:
    if value is None:
        return
    check_storable(value, field)
    if json_size(value) > MAX_SIDE_JSON_BYTES:
        raise BadRequest(f"{field} must be at most 64 KiB")


def next_run(expression: str, timezone: str, after: datetime) -> datetime:
    """Next fire strictly after `after`; 400 when the expression never matches a date."""
    try:
        return cron.next_fire_text(expression, timezone, after)
    except cron.CronError as exc:
        raise ValidationFailed(
            "cron_expression", f"Invalid cron expression: {exc}", "cron"
        ) from None


async def _now(conn: asyncpg.Connection) -> datetime:
    """The database clock (the firing loop compares `next_run_at` with it)."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now


async def _wake_loops(conn: asyncpg.Connection, next_run_at: datetime | None) -> None:
    if next_run_at is not None:
        await conn.execute(q.NOTIFY, next_run_at.isoformat())


async def create_schedule(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, body: CreateSchedule
) -> dict[str, Any]:
    """Insert an active schedule with its first `next_run_at`. 400 bad cron/zone/template,
    403 queue scope, 413 template, 429 `schedules` cap or a new queue over the `queues` cap."""
    auth.require_queue(body.queue_name)
    _check_template(auth, settings, body.payload_template)
    _check_side_json(body.tags, "tags")
    _check_side_json(body.metadata, "metadata")
    first = next_run(body.cron_expression, body.timezone, await _now(conn))
    max_retries, timeout = body.max_retries, body.timeout_seconds
    if max_retries is None or timeout is None:
        default_retries, default_timeout = await jobs.queue_defaults(
            conn, settings, auth.organization_id, body.queue_name
        )
        max_retries = default_retries if max_retries is None else max_retries
        timeout = default_timeout if timeout is None else timeout
    await quotas.reserve_new_queues(conn, settings, auth, [body.queue_name])
    await quotas.reserve(conn, settings, auth, "schedules")
    row = await conn.fetchrow(
        q.INSERT_SCHEDULE,
        auth.organization_id,
        body.name,
        body.description,
        body.cron_expression,
        body.timezone,
        body.queue_name,
        body.payload_template,
        body.priority,
        max_retries,
        timeout,
        first,
        body.tags,
        body.metadata,
    )
    await _wake_loops(conn, first)
    return dict(row)


async def list_schedules(
    conn: asyncpg.Connection,
    auth: AuthContext,
    queue_name: str | None,
    is_active: bool | None,
    page: Page,
) -> list[dict[str, Any]]:
    """Newest first, within the key's queue scope."""
    rows = await conn.fetch(
        q.LIST_SCHEDULES, auth.organization_id, queue_name, is_active, auth.scope_filter,
        page.limit, page.offset,
    )
    return [dict(r) for r in rows]


async def get_schedule(conn: asyncpg.Connection, auth: AuthContext, schedule_id: str) -> dict[str, Any]:
    """The Schedule; 404 for unknown ids, other organizations and out-of-scope queues."""
    row = await conn.fetchrow(
        q.GET_SCHEDULE, parse_uuid_id(schedule_id, "Schedule"), auth.organization_id,
        auth.scope_filter,
    )
    if row is None:
        raise NotFound("Schedule not found")
    return dict(row)


async def _lock(conn: asyncpg.Connection, auth: AuthContext, schedule_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        q.LOCK_SCHEDULE, parse_uuid_id(schedule_id, "Schedule"), auth.organization_id,
        auth.scope_filter,
    )
    if row is None:
        raise NotFound("Schedule not found")
    return row


async def _activate(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, queue_name: str
) -> None:
    """An inactive schedule becoming active counts against `max_schedules` (and makes its
    queue exist again: `queues` cap for a new name)."""
    await quotas.reserve_new_queues(conn, settings, auth, [queue_name])
    await quotas.reserve(conn, settings, auth, "schedules")


async def update_schedule(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    schedule_id: str,
    body: UpdateSchedule,
) -> dict[str, Any]:
    """Apply the fields present in the body (`queue_name` is ignored). `next_run_at` is
    recomputed from now when the cron or the zone changes, or when the schedule is activated."""
    current = await _lock(conn, auth, schedule_id)
    given = body.model_fields_set
    merged = dict(current)
    for field in ("name", "description", "cron_expression", "timezone", "payload_template",
                  "priority", "max_retries", "timeout_seconds", "tags", "metadata", "is_active"):
        if field in given:
            merged[field] = getattr(body, field)
    for required in ("name", "cron_expression", "timezone", "priority", "max_retries",
                     "timeout_seconds", "is_active"):
        if merged[required] is None:
            raise ValidationFailed(required, "must not be null", "required")
    if "payload_template" in given:
        _check_template(auth, settings, merged["payload_template"])
    _check_side_json(merged["tags"], "tags")
    _check_side_json(merged["metadata"], "metadata")
    activating = merged["is_active"] and not current["is_active"]
    if activating:
        await _activate(conn, settings, auth, current["queue_name"])
    next_run_at = current["next_run_at"]
    changed_cron = (
        merged["cron_expression"] != current["cron_expression"]
        or merged["timezone"] != current["timezone"]
    )
    if changed_cron or activating or next_run_at is None:
        next_run_at = next_run(merged["cron_expression"], merged["timezone"], await _now(conn))
    row = await conn.fetchrow(
        q.UPDATE_SCHEDULE,
        current["id"],
        auth.organization_id,
        merged["name"],
        merged["description"],
        merged["cron_expression"],
        merged["timezone"],
        merged["payload_template"],
        merged["priority"],
        merged["max_retries"],
        merged["timeout_seconds"],
        merged["tags"],
        merged["metadata"],
        merged["is_active"],
        next_run_at,
    )
    if row["is_active"]:
        await _wake_loops(conn, next_run_at)
    return dict(row)


async def delete_schedule(conn: asyncpg.Connection, auth: AuthContext, schedule_id: str) -> None:
    """Delete it and its runs (CASCADE); the jobs it enqueued stay. 404 unknown."""
    deleted = await conn.fetchval(
        q.DELETE_SCHEDULE, parse_uuid_id(schedule_id, "Schedule"), auth.organization_id,
        auth.scope_filter,
    )
    if deleted is None:
        raise NotFound("Schedule not found")


async def pause_schedule(conn: asyncpg.Connection, auth: AuthContext, schedule_id: str) -> dict[str, Any]:
    """`is_active = false`; `next_run_at` is kept (CONTRACT §9.3)."""
    current = await _lock(conn, auth, schedule_id)
    row = await conn.fetchrow(
        q.UPDATE_SCHEDULE, current["id"], auth.organization_id,
        *(current[f] for f in ("name", "description", "cron_expression", "timezone",
                               "payload_template", "priority", "max_retries",
                               "timeout_seconds", "tags", "metadata")),
        False, current["next_run_at"],
    )
    return dict(row)


async def resume_schedule(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, schedule_id: str
) -> dict[str, Any]:
    """`is_active = true`, `next_run_at` recomputed from now; a paused schedule is charged
    against `max_schedules` (429)."""
    return await update_schedule(conn, settings, auth, schedule_id, UpdateSchedule(is_active=True))


@dataclass(frozen=True)
class Fired:
    job_id: str | None
    error: str | None
    next_run_at: datetime | None


def _plan_auth(organization_id: str, plan_tier: str, custom_limits: Any) -> AuthContext:
    """The organization acting through its schedule: unrestricted, on its current plan."""
    return AuthContext(
        organization_id=organization_id, api_key_id="", plan_tier=plan_tier,
        custom_limits=custom_limits,
    )


def _new_job(row: asyncpg.Record | dict[str, Any]) -> jobs.NewJob:
    return jobs.NewJob(
        queue_name=row["queue_name"],
        payload=row["payload_template"],
        priority=row["priority"],
        max_retries=row["max_retries"],
        timeout_seconds=row["timeout_seconds"],
        tags=row["tags"],
    )


async def trigger_schedule(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    schedule_id: str,
    events: Events,
) -> dict[str, Any]:
    """Enqueue one job now from the template: `{job_id, triggered_at}`. Counts a run and sets
    `last_run_at`; the cron's `next_run_at` is unchanged. 429 daily quota, 413 payload."""
    current = await _lock(conn, auth, schedule_id)
    job_id, _ = await jobs.create_job(conn, settings, auth, _new_job(current), events)
    run = await conn.fetchrow(
        q.INSERT_RUN, auth.organization_id, current["id"], job_id, "completed", None, None, None
    )
    await conn.execute(
        q.RECORD_FIRE, current["id"], auth.organization_id, run["started_at"], False, None
    )
    events.schedule_triggered(auth.organization_id, current["id"], job_id, current["queue_name"])
    return {"job_id": job_id, "triggered_at": run["started_at"]}


async def schedule_history(
    conn: asyncpg.Connection, auth: AuthContext, schedule_id: str, page: Page
) -> list[dict[str, Any]]:
    """Runs newest first, each with the current status of its job (`job_status`)."""
    current = await get_schedule(conn, auth, schedule_id)
    rows = await conn.fetch(q.LIST_RUNS, current["id"], auth.organization_id, page.limit, page.offset)
    return [dict(r) for r in rows]


async def fire_due(
    conn: asyncpg.Connection, settings: Settings, events: Events, row: asyncpg.Record
) -> Fired:
    """One cron fire of a due, row-locked schedule (CONTRACT §9.3), in the caller's
    transaction: enqueue a job from the template (quota checks included), write the run row,
    bump the counters and move `next_run_at` to the first fire after now (catch-up: missed
    fires are skipped, one run now).

    A fire that cannot enqueue (quota, template over the plan cap, …) records a `failed` run
    with the reason and still moves `next_run_at`. A row whose cron or zone no longer parses
    records a failed run and gets `next_run_at = NULL` (never due again until updated).
    """
    org_id = row["organization_id"]
    error: str | None = None
    job_id: str | None = None
    try:
        next_run_at: datetime | None = cron.next_fire_text(
            row["cron_expression"], row["timezone"], max(row["now"], row["next_run_at"])
        )
    except cron.CronError as exc:
        next_run_at, error = None, f"Invalid schedule, no further runs until it is updated: {exc}"
    if error is None:
        auth = _plan_auth(org_id, row["plan_tier"], row["custom_limits"])
        try:
            async with conn.transaction():  # savepoint: a refused job leaves nothing behind
                job_id, _ = await jobs.create_job(conn, settings, auth, _new_job(row), events)
        except SpooledError as exc:
            error = exc.message
        except asyncpg.PostgresError as exc:  # a bad row must not stop the loop (§9.3)
            error = f"Could not enqueue the job: {type(exc).__name__}"
    status = "completed" if job_id is not None else "failed"
    run = await conn.fetchrow(
        q.INSERT_RUN, org_id, row["id"], job_id, status,
        None if error is None else error[:ERROR_MESSAGE_MAX], row["next_run_at"], row["now"],
    )
    if job_id is not None:
        await conn.execute(q.RECORD_FIRE, row["id"], org_id, run["started_at"], True, next_run_at)
        events.schedule_triggered(org_id, row["id"], job_id, row["queue_name"])
    else:
        await conn.execute(q.ADVANCE, row["id"], org_id, next_run_at)
    return Fired(job_id, error, next_run_at)
