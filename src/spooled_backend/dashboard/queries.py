"""Dashboard aggregates (CONTRACT §7.15). $1 org, $2 queue scope (NULL = unrestricted)."""

from __future__ import annotations

from spooled_backend.queues.queries import LIST_QUEUES

_SCOPE = "($2::text[] IS NULL OR queue_name = ANY($2::text[]))"

# Wait = first claim − creation (jobs first claimed in the last 24 h); processing = completion −
# first claim (jobs completed in the last 24 h). Both in milliseconds, NULL without samples.
JOB_TOTALS = f"""
SELECT
    count(*) AS total,
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'processing') AS processing,
    count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours')
        AS completed_24h,
    count(*) FILTER (WHERE status IN ('failed', 'deadletter')
                     AND updated_at > now() - interval '24 hours') AS failed_24h,
    count(*) FILTER (WHERE status = 'deadletter') AS deadletter,
    (avg(EXTRACT(EPOCH FROM started_at - created_at) * 1000)
        FILTER (WHERE started_at > now() - interval '24 hours'))::float8 AS avg_wait_time_ms,
    (avg(EXTRACT(EPOCH FROM completed_at - started_at) * 1000)
        FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours'
                AND started_at IS NOT NULL))::float8 AS avg_processing_time_ms,
    count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS jobs_created_1h,
    count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '1 hour')
        AS jobs_completed_1h,
    count(*) FILTER (WHERE status IN ('failed', 'deadletter')
                     AND updated_at > now() - interval '1 hour') AS jobs_failed_1h
FROM jobs WHERE organization_id = $1 AND {_SCOPE}
"""

# Every queue the caller may see (as GET /queues), with live counts and the paused flag.
QUEUES = f"""
WITH listed AS ({LIST_QUEUES.strip()}),
counts AS (
    SELECT queue_name,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'processing') AS processing
    FROM jobs
    WHERE organization_id = $1 AND status IN ('pending', 'processing') AND {_SCOPE}
    GROUP BY queue_name
)
SELECT l.queue_name AS name, COALESCE(c.pending, 0) AS pending,
       COALESCE(c.processing, 0) AS processing, NOT COALESCE(l.enabled, true) AS paused
FROM listed l LEFT JOIN counts c USING (queue_name)
ORDER BY l.queue_name
"""

# Live (non-offline) workers whose queues are all in scope, as GET /workers shows them.
WORKERS = """
SELECT count(*) AS total, count(*) FILTER (WHERE status = 'healthy') AS healthy
FROM workers
WHERE organization_id = $1 AND status <> 'offline'
  AND ($2::text[] IS NULL OR queue_names <@ $2::text[])
"""
