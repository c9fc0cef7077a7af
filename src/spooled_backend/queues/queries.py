"""Queue SQL (CONTRACT §7.8, §9.1). Every statement filters by `organization_id = $1`.

A queue "exists" when it has a `queue_config` row, holds jobs, or is targeted by an active
schedule; the job names come from an index skip scan over `jobs_org_queue_status_idx`, so
listing queues never reads every job row.
"""

from __future__ import annotations

from spooled_backend.organizations.quota_queries import JOB_QUEUE_NAMES

CONFIG_COLUMNS = """
    id, organization_id, queue_name, max_retries, default_timeout, rate_limit, enabled,
    settings, created_at, updated_at
"""

# Distinct job queue names of org $1 (one index probe per name), as the CTE `job_queues`.
_JOB_QUEUE_NAMES = f"""
job_queues AS ({JOB_QUEUE_NAMES})
"""

# $1 org, $2 scope (NULL = unrestricted). Configured ∪ implicit, sorted, at most 100.
LIST_QUEUES = f"""
WITH {_JOB_QUEUE_NAMES}, names AS (
    SELECT queue_name FROM job_queues
    UNION SELECT queue_name FROM queue_config WHERE organization_id = $1
    UNION SELECT queue_name FROM schedules WHERE organization_id = $1 AND is_active
)
SELECT n.queue_name, c.max_retries, c.default_timeout, c.rate_limit, c.enabled
FROM names n
LEFT JOIN queue_config c ON c.organization_id = $1 AND c.queue_name = n.queue_name
WHERE ($2::text[] IS NULL OR n.queue_name = ANY($2::text[]))
ORDER BY n.queue_name
LIMIT 100
"""

GET_CONFIG = f"""
SELECT {CONFIG_COLUMNS} FROM queue_config WHERE organization_id = $1 AND queue_name = $2
"""

# Evidence that a config-less queue exists: its first job / active schedule times.
IMPLICIT_QUEUE = """
SELECT least(j.first_at, s.first_at) AS created_at, greatest(j.last_at, s.last_at) AS updated_at
FROM (SELECT min(created_at) AS first_at, max(updated_at) AS last_at FROM jobs
      WHERE organization_id = $1 AND queue_name = $2) j,
     (SELECT min(created_at) AS first_at, max(updated_at) AS last_at FROM schedules
      WHERE organization_id = $1 AND queue_name = $2 AND is_active) s
WHERE j.first_at IS NOT NULL OR s.first_at IS NOT NULL
"""

QUEUE_EXISTS = """
SELECT EXISTS (SELECT 1 FROM queue_config WHERE organization_id = $1 AND queue_name = $2)
    OR EXISTS (SELECT 1 FROM jobs WHERE organization_id = $1 AND queue_name = $2)
    OR EXISTS (SELECT 1 FROM schedules
               WHERE organization_id = $1 AND queue_name = $2 AND is_active)
"""

# Upsert. $1 org, $2 queue, $3 max_retries, $4 default_timeout, $5 rate_limit, $6 set rate_limit?
# $7 enabled, $8 settings patch (merged over stored), $9/$10 first-create defaults.
# NULL arguments keep the stored value. A changed rate_limit starts a fresh (full) bucket;
# enabling a paused queue clears its pause metadata like resume does.
UPSERT_CONFIG = f"""
INSERT INTO queue_config (organization_id, queue_name, max_retries, default_timeout, rate_limit,
                          enabled, settings)
VALUES ($1, $2, COALESCE($3::int, $9::int), COALESCE($4::int, $10::int),
        CASE WHEN $6::bool THEN $5::int END, COALESCE($7::bool, true),
        COALESCE($8::jsonb, '{{}}'::jsonb))
ON CONFLICT (organization_id, queue_name) DO UPDATE SET
    max_retries = COALESCE($3::int, queue_config.max_retries),
    default_timeout = COALESCE($4::int, queue_config.default_timeout),
    rate_limit = CASE WHEN $6::bool THEN $5::int ELSE queue_config.rate_limit END,
    rate_tokens = CASE WHEN $6::bool AND $5::int IS DISTINCT FROM queue_config.rate_limit
                       THEN NULL ELSE queue_config.rate_tokens END,
    rate_refilled_at = CASE WHEN $6::bool AND $5::int IS DISTINCT FROM queue_config.rate_limit
                            THEN NULL ELSE queue_config.rate_refilled_at END,
    enabled = COALESCE($7::bool, queue_config.enabled),
    settings = CASE WHEN $7::bool AND queue_config.settings ? 'paused'
                    THEN (queue_config.settings - 'paused_at' - 'paused_reason')
                         || '{{"paused": false}}'::jsonb
                    ELSE queue_config.settings END || COALESCE($8::jsonb, '{{}}'::jsonb),
    updated_at = now()
RETURNING {CONFIG_COLUMNS}
"""

LOCK_CONFIG = f"""
SELECT {CONFIG_COLUMNS} FROM queue_config WHERE organization_id = $1 AND queue_name = $2
FOR NO KEY UPDATE
"""

# Pause: $3 settings patch; creates the row (defaults $4/$5) for a config-less queue.
PAUSE_QUEUE = f"""
INSERT INTO queue_config (organization_id, queue_name, max_retries, default_timeout, enabled,
                          settings)
VALUES ($1, $2, $4::int, $5::int, false, $3::jsonb)
ON CONFLICT (organization_id, queue_name) DO UPDATE SET
    enabled = false, settings = queue_config.settings || $3::jsonb, updated_at = now()
RETURNING {CONFIG_COLUMNS}
"""

RESUME_QUEUE = f"""
UPDATE queue_config SET enabled = true,
    settings = (settings - 'paused_at' - 'paused_reason') || '{{"paused": false}}'::jsonb,
    updated_at = now()
WHERE organization_id = $1 AND queue_name = $2
RETURNING {CONFIG_COLUMNS}
"""

JOB_COUNTS = """
SELECT count(*) FILTER (WHERE status IN ('pending', 'scheduled', 'processing')) AS active,
       count(*) AS total
FROM jobs WHERE organization_id = $1 AND queue_name = $2
"""

DELETE_CONFIG = "DELETE FROM queue_config WHERE organization_id = $1 AND queue_name = $2"

DELETE_QUEUE_JOBS = "DELETE FROM jobs WHERE organization_id = $1 AND queue_name = $2"

DELETE_QUEUE_DLQ = "DELETE FROM dead_letter_queue WHERE organization_id = $1 AND queue_name = $2"

# Stats (CONTRACT §7.8). failed = failed + deadletter that changed in the last 24 h.
QUEUE_STATS = """
SELECT
    count(*) FILTER (WHERE status = 'pending') AS pending_jobs,
    count(*) FILTER (WHERE status = 'processing') AS processing_jobs,
    count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours')
        AS completed_jobs_24h,
    count(*) FILTER (WHERE status IN ('failed', 'deadletter')
                     AND updated_at > now() - interval '24 hours') AS failed_jobs_24h,
    avg(EXTRACT(EPOCH FROM completed_at - started_at) * 1000)
        FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours'
                AND started_at IS NOT NULL)::float8 AS avg_processing_time_ms,
    floor(EXTRACT(EPOCH FROM now() - min(created_at)
        FILTER (WHERE status IN ('pending', 'scheduled'))))::bigint AS max_job_age_seconds
FROM jobs WHERE organization_id = $1 AND queue_name = $2
"""

ACTIVE_WORKERS = """
SELECT count(*) FROM workers
WHERE organization_id = $1 AND status = 'healthy'
  AND (queue_name = $2 OR $2 = ANY(queue_names))
"""
