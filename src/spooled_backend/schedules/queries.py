"""SQL for schedules and their runs (CONTRACT §7.10, §9.3, §18). Every statement filters by
organization; list/get also apply the key's queue scope (`$n::text[]`, NULL = unrestricted)."""

from __future__ import annotations

SCHEDULE_COLUMNS = """id, organization_id, name, description, cron_expression, timezone,
    queue_name, payload_template, priority, max_retries, timeout_seconds, is_active,
    last_run_at, next_run_at, run_count, tags, metadata, created_at, updated_at"""

# Wakes the firing loops of every replica (schedules/tasks.py); delivered at commit.
NOTIFY_CHANNEL = "spooled_schedules"
NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', $1)"

INSERT_SCHEDULE = f"""
INSERT INTO schedules (organization_id, name, description, cron_expression, timezone,
                       queue_name, payload_template, priority, max_retries, timeout_seconds,
                       is_active, next_run_at, tags, metadata)
VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7::jsonb, 'null'::jsonb), $8, $9, $10, true, $11,
        $12, $13)
RETURNING {SCHEDULE_COLUMNS}
"""

# $1 org, $2 queue_name?, $3 is_active?, $4 scope text[]?, $5 limit, $6 offset
LIST_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
WHERE organization_id = $1
  AND ($2::text IS NULL OR queue_name = $2)
  AND ($3::bool IS NULL OR is_active = $3)
  AND ($4::text[] IS NULL OR queue_name = ANY($4))
ORDER BY created_at DESC, id
LIMIT $5 OFFSET $6
"""

GET_SCHEDULE = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
WHERE id = $1 AND organization_id = $2 AND ($3::text[] IS NULL OR queue_name = ANY($3))
"""

LOCK_SCHEDULE = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
WHERE id = $1 AND organization_id = $2 AND ($3::text[] IS NULL OR queue_name = ANY($3))
FOR UPDATE
"""

# Every column the update route may change; the service passes the merged values.
UPDATE_SCHEDULE = f"""
UPDATE schedules SET
    name = $3, description = $4, cron_expression = $5, timezone = $6,
    payload_template = COALESCE($7::jsonb, 'null'::jsonb), priority = $8, max_retries = $9,
    timeout_seconds = $10, tags = $11, metadata = $12, is_active = $13, next_run_at = $14,
    updated_at = now()
WHERE id = $1 AND organization_id = $2
RETURNING {SCHEDULE_COLUMNS}
"""

DELETE_SCHEDULE = """
DELETE FROM schedules
WHERE id = $1 AND organization_id = $2 AND ($3::text[] IS NULL OR queue_name = ANY($3))
RETURNING id
"""

# $1 id, $2 org, $3 scope, $4 limit, $5 offset. `job_status`: the enqueued job's status now.
LIST_RUNS = """
SELECT r.id, r.schedule_id, r.job_id, r.status, r.error_message, r.started_at, r.completed_at,
       j.status AS job_status
FROM schedule_runs r
LEFT JOIN jobs j ON j.id = r.job_id AND j.organization_id = r.organization_id
WHERE r.schedule_id = $1 AND r.organization_id = $2
ORDER BY r.started_at DESC, r.id DESC
LIMIT $3 OFFSET $4
"""

# A run row: $1 org, $2 schedule, $3 job?, $4 status, $5 error?, $6 scheduled_for? (cron
# fire), $7 started_at? (a cron fire started when the loop claimed it; default now)
INSERT_RUN = """
INSERT INTO schedule_runs (organization_id, schedule_id, job_id, status, error_message,
                           started_at, completed_at, scheduled_for)
VALUES ($1, $2, $3, $4, $5, COALESCE($7::timestamptz, clock_timestamp()), clock_timestamp(), $6)
RETURNING id, started_at
"""

# After a fire that enqueued a job (cron or manual): counters; $3 = next_run_at to store
# (NULL keeps the current one: a manual trigger does not move the cron).
RECORD_FIRE = f"""
UPDATE schedules SET run_count = run_count + 1, last_run_at = $3,
       next_run_at = CASE WHEN $4 THEN $5 ELSE next_run_at END, updated_at = now()
WHERE id = $1 AND organization_id = $2
RETURNING {SCHEDULE_COLUMNS}
"""

# ---- firing loop (no tenant binding: the loop runs as the login role, like every loop) ----

# The next due schedule nobody else is firing, with what firing needs to know about its org.
CLAIM_DUE = """
SELECT s.id, s.organization_id, s.name, s.cron_expression, s.timezone, s.queue_name,
       s.payload_template, s.priority, s.max_retries, s.timeout_seconds, s.tags,
       s.next_run_at, clock_timestamp() AS now, o.plan_tier, o.custom_limits
FROM schedules s JOIN organizations o ON o.id = s.organization_id
WHERE s.is_active AND s.next_run_at <= clock_timestamp() AND NOT (s.id = ANY($1::text[]))
ORDER BY s.next_run_at
LIMIT 1
FOR UPDATE OF s SKIP LOCKED
"""

# Seconds until the earliest active schedule is due (negative: overdue); NULL: none.
SECONDS_TO_NEXT = """
SELECT EXTRACT(EPOCH FROM (min(next_run_at) - clock_timestamp()))::float8
FROM schedules WHERE is_active AND NOT (id = ANY($1::text[]))
"""

# A fire that could not enqueue (quota, template, deleted org state): only move the cron.
ADVANCE = """
UPDATE schedules SET next_run_at = $3, updated_at = now()
WHERE id = $1 AND organization_id = $2
"""
