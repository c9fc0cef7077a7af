"""Worker SQL (CONTRACT §7.9, §9.2). Worker ids are global primary keys; every statement that
acts for a caller also filters by `organization_id`, and scoped keys by their queue list."""

from __future__ import annotations

from spooled_backend.scheduler.queries import release_to_retry_or_dlq

# Both name sets (CONTRACT §21 R5): the public names the SDKs read and the raw column names the
# official dashboard reads (its worker page renders nothing without `created_at`).
WORKER_COLUMNS = """
    id, organization_id, queue_name, queue_names, hostname, worker_type,
    max_concurrent_jobs AS max_concurrency, current_job_count AS current_jobs, status,
    last_heartbeat, metadata, version, created_at AS registered_at, updated_at,
    jobs_processed, jobs_failed, max_concurrent_jobs, current_job_count, created_at
"""

# Who owns a worker id, and whether it is counted against `max_workers` right now.
WORKER_OWNER = "SELECT organization_id, status FROM workers WHERE id = $1 FOR NO KEY UPDATE"

# $1 id, $2 org, $3 queue, $4 hostname, $5 type, $6 max concurrency, $7 metadata, $8 version
# Re-registering refreshes everything and makes the worker healthy again; another
# organization's id is left alone (no row returned → 409).
UPSERT_WORKER = """
INSERT INTO workers (id, organization_id, queue_name, queue_names, hostname, worker_type,
                     max_concurrent_jobs, metadata, version, status, last_heartbeat)
VALUES ($1, $2, $3, ARRAY[$3], $4, $5, $6, $7, $8, 'healthy', now())
ON CONFLICT (id) DO UPDATE SET
    queue_name = EXCLUDED.queue_name, queue_names = EXCLUDED.queue_names,
    hostname = EXCLUDED.hostname, worker_type = EXCLUDED.worker_type,
    max_concurrent_jobs = EXCLUDED.max_concurrent_jobs, metadata = EXCLUDED.metadata,
    version = EXCLUDED.version, status = 'healthy', current_job_count = 0,
    last_heartbeat = now(), updated_at = now()
WHERE workers.organization_id = EXCLUDED.organization_id
RETURNING id, queue_name
"""

# $3 scope (NULL = unrestricted): a worker is visible when all its queues are in scope.
_VISIBLE = "($3::text[] IS NULL OR queue_names <@ $3::text[])"

GET_WORKER = f"""
SELECT {WORKER_COLUMNS} FROM workers WHERE id = $1 AND organization_id = $2 AND {_VISIBLE}
"""

LIST_WORKERS = f"""
SELECT {WORKER_COLUMNS} FROM workers
WHERE organization_id = $1 AND ($2::text[] IS NULL OR queue_names <@ $2::text[])
ORDER BY last_heartbeat DESC LIMIT 100
"""

# $4 current jobs, $5 self-reported status (NULL = none or invalid), $6 metadata (NULL = keep).
# Draining is sticky: only an explicit self-reported status leaves it (CONTRACT §9.2).
HEARTBEAT = f"""
UPDATE workers SET last_heartbeat = now(), current_job_count = $4,
    status = CASE WHEN $5::text IS NOT NULL THEN $5::text
                  WHEN status = 'draining' THEN 'draining' ELSE 'healthy' END,
    metadata = COALESCE($6::jsonb, metadata), updated_at = now()
WHERE id = $1 AND organization_id = $2 AND {_VISIBLE}
RETURNING status
"""

DEREGISTER = f"""
UPDATE workers SET status = 'offline', current_job_count = 0, updated_at = now()
WHERE id = $1 AND organization_id = $2 AND {_VISIBLE}
RETURNING id, queue_name
"""

# ---- liveness sweep (every SCHEDULER_WORKER_LIVENESS_INTERVAL_SECS, all organizations) ------

# healthy → degraded when the last heartbeat is older than $1 seconds. $2 batch size.
MARK_DEGRADED = """
UPDATE workers w SET status = 'degraded', updated_at = now()
WHERE w.id IN (
    SELECT id FROM workers
    WHERE status = 'healthy' AND last_heartbeat <= now() - make_interval(secs => $1)
    ORDER BY last_heartbeat LIMIT $2 FOR UPDATE SKIP LOCKED
) AND w.status = 'healthy' AND w.last_heartbeat <= now() - make_interval(secs => $1)
RETURNING w.id, w.organization_id
"""

# Any live status → offline when the last heartbeat is older than $1 seconds. $2 batch size.
MARK_OFFLINE = """
UPDATE workers w SET status = 'offline', current_job_count = 0, updated_at = now()
WHERE w.id IN (
    SELECT id FROM workers
    WHERE status <> 'offline' AND last_heartbeat <= now() - make_interval(secs => $1)
    ORDER BY last_heartbeat LIMIT $2 FOR UPDATE SKIP LOCKED
) AND w.status <> 'offline' AND w.last_heartbeat <= now() - make_interval(secs => $1)
RETURNING w.id, w.organization_id
"""

# Jobs still processing under the given workers ($1 org ids, $2 worker ids, pairwise) →
# pending with backoff, or deadletter (+ audit row) when retries are exhausted (CONTRACT §8.2).
# $5 = true limits it to expired leases (deregister); false takes every lease (worker went
# offline). Rows locked by an in-flight acknowledgement are skipped (that ack settles them,
# otherwise lease recovery does). $3 retry reason, $4 exhausted reason, $6 history event.
RELEASE_WORKER_JOBS = (
    """
WITH gone AS (
    SELECT * FROM unnest($1::text[], $2::text[]) AS g(organization_id, worker_id)
), orphaned AS (
    SELECT j.id FROM jobs j JOIN gone g
      ON j.organization_id = g.organization_id AND j.assigned_worker_id = g.worker_id
    WHERE j.status = 'processing' AND (NOT $5::bool OR j.lease_expires_at <= now())
    FOR UPDATE OF j SKIP LOCKED
"""
    + release_to_retry_or_dlq("orphaned", "$6::text")
)
