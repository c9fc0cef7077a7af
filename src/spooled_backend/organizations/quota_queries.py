"""SQL for plan quotas and usage counters (CONTRACT §12.2, §12.3, §18 `organization_usage`)."""

from __future__ import annotations

# Per-(org, resource) transaction advisory lock: two int4 keys so it never collides with the
# single-bigint locks used elsewhere.
LOCK_RESOURCE = "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))"

# Distinct queue names of an org via an index skip scan on jobs (organization_id, queue_name, …),
# so counting queues does not read every job row.
JOB_QUEUE_NAMES = """
WITH RECURSIVE jq AS (
    (SELECT queue_name FROM jobs WHERE organization_id = $1 ORDER BY queue_name LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue_name FROM jobs j
            WHERE j.organization_id = $1 AND j.queue_name > jq.queue_name
            ORDER BY j.queue_name LIMIT 1)
    FROM jq WHERE jq.queue_name IS NOT NULL
)
SELECT queue_name FROM jq WHERE queue_name IS NOT NULL
"""

QUEUE_NAMES_SQL = f"""
{JOB_QUEUE_NAMES}
UNION SELECT queue_name FROM queue_config WHERE organization_id = $1
UNION SELECT queue_name FROM schedules WHERE organization_id = $1 AND is_active
"""

COUNT_QUEUES = f"SELECT count(*) FROM ({QUEUE_NAMES_SQL}) names"

# Which of the given names already exist as queues (config, jobs or an active schedule).
EXISTING_QUEUES = """
SELECT n FROM unnest($2::text[]) AS n
WHERE EXISTS (SELECT 1 FROM queue_config c WHERE c.organization_id = $1 AND c.queue_name = n)
   OR EXISTS (SELECT 1 FROM jobs j WHERE j.organization_id = $1 AND j.queue_name = n)
   OR EXISTS (SELECT 1 FROM schedules s
              WHERE s.organization_id = $1 AND s.queue_name = n AND s.is_active)
"""

COUNT_ACTIVE_JOBS = """
SELECT count(*) FROM jobs
WHERE organization_id = $1 AND status IN ('pending', 'scheduled', 'processing')
"""

COUNT_WORKERS = """
SELECT count(*) FROM workers WHERE organization_id = $1 AND status IN ('healthy', 'degraded')
"""

COUNT_API_KEYS = """
SELECT count(*) FROM api_keys
WHERE organization_id = $1 AND is_active AND (expires_at IS NULL OR expires_at > now())
"""

COUNT_SCHEDULES = "SELECT count(*) FROM schedules WHERE organization_id = $1 AND is_active"

COUNT_WORKFLOWS = "SELECT count(*) FROM workflows WHERE organization_id = $1"

COUNT_WEBHOOKS = "SELECT count(*) FROM outgoing_webhooks WHERE organization_id = $1 AND enabled"

COUNTERS = {
    "active_jobs": COUNT_ACTIVE_JOBS,
    "queues": COUNT_QUEUES,
    "workers": COUNT_WORKERS,
    "api_keys": COUNT_API_KEYS,
    "schedules": COUNT_SCHEDULES,
    "workflows": COUNT_WORKFLOWS,
    "webhooks": COUNT_WEBHOOKS,
}

# Daily counter. `today` is the UTC date; a row whose last reset is older counts as 0.
# $1 org, $2 amount to add, $3 limit (NULL = unlimited). One statement: PostgreSQL re-evaluates
# the WHERE on the latest row version after waiting for a concurrent updater, so reservations
# never overshoot. Returns the new count, or no row when the addition would exceed the limit
# (then nothing changed).
RESERVE_DAILY_JOBS = """
UPDATE organization_usage u SET
    jobs_created_today = (CASE WHEN u.last_daily_reset < (now() AT TIME ZONE 'utc')::date
                               THEN 0 ELSE u.jobs_created_today END) + $2,
    last_daily_reset = (now() AT TIME ZONE 'utc')::date,
    jobs_created_month = (CASE WHEN u.last_monthly_reset
                                    < date_trunc('month', now() AT TIME ZONE 'utc')::date
                               THEN 0 ELSE u.jobs_created_month END) + $2,
    last_monthly_reset = date_trunc('month', now() AT TIME ZONE 'utc')::date,
    total_jobs_created = u.total_jobs_created + $2,
    updated_at = now()
WHERE u.organization_id = $1
  AND ($3::bigint IS NULL
       OR (CASE WHEN u.last_daily_reset < (now() AT TIME ZONE 'utc')::date
                THEN 0 ELSE u.jobs_created_today END) + $2 <= $3)
RETURNING u.jobs_created_today, u.last_daily_reset
"""

ENSURE_USAGE_ROW = """
INSERT INTO organization_usage (organization_id) VALUES ($1)
ON CONFLICT (organization_id) DO NOTHING
"""

# Refund only within the same UTC day as the reservation ($3) and never below zero.
REFUND_DAILY_JOBS = """
UPDATE organization_usage SET
    jobs_created_today = GREATEST(jobs_created_today - $2, 0),
    jobs_created_month = GREATEST(jobs_created_month - $2, 0),
    total_jobs_created = GREATEST(total_jobs_created - $2, 0),
    updated_at = now()
WHERE organization_id = $1 AND last_daily_reset = $3
"""

DAILY_JOBS = """
SELECT CASE WHEN last_daily_reset < (now() AT TIME ZONE 'utc')::date THEN 0
            ELSE jobs_created_today END
FROM organization_usage WHERE organization_id = $1
"""

COUNT_JOBS_TODAY = """
SELECT count(*) FROM jobs
WHERE organization_id = $1
  AND created_at >= ((now() AT TIME ZONE 'utc')::date)::timestamp AT TIME ZONE 'utc'
"""

RESET_DAILY_JOBS = """
UPDATE organization_usage SET jobs_created_today = 0,
       last_daily_reset = (now() AT TIME ZONE 'utc')::date, updated_at = now()
WHERE organization_id = $1
"""

ORG_PLAN = "SELECT id, plan_tier, custom_limits FROM organizations WHERE id = $1"

# Job creation: the id of an already-created job with this idempotency key (a replay that hits
# a quota still answers with the existing job, CONTRACT §8.5).
FIND_IDEMPOTENT_JOB = """
SELECT id FROM jobs WHERE organization_id = $1 AND idempotency_key = $2
"""
