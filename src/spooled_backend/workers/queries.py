"""Worker SQL."""

from __future__ import annotations

WORKER_COLUMNS = """
    id, organization_id, queue_name, queue_names, hostname, worker_type,
    max_concurrent_jobs AS max_concurrency, current_job_count AS current_jobs, status,
    last_heartbeat, metadata, version, created_at AS registered_at, updated_at,
    jobs_processed, jobs_failed
"""

# $1 id, $2 org, $3 queue, $4 hostname, $5 type, $6 max concurrency, $7 metadata, $8 version
UPSERT_WORKER = """
INSERT INTO workers (id, organization_id, queue_name, queue_names, hostname, worker_type,
                     max_concurrent_jobs, metadata, version, status, last_heartbeat)
VALUES ($1, $2, $3, ARRAY[$3], $4, $5, $6, $7, $8, 'healthy', now())
ON CONFLICT (id) DO UPDATE SET
    queue_name = EXCLUDED.queue_name, queue_names = EXCLUDED.queue_names,
    hostname = EXCLUDED.hostname, worker_type = EXCLUDED.worker_type,
    max_concurrent_jobs = EXCLUDED.max_concurrent_jobs, metadata = EXCLUDED.metadata,
    version = EXCLUDED.version, status = 'healthy', last_heartbeat = now(), updated_at = now()
WHERE workers.organization_id = EXCLUDED.organization_id
RETURNING id, queue_name
"""

GET_WORKER = f"SELECT {WORKER_COLUMNS} FROM workers WHERE id = $1 AND organization_id = $2"

LIST_WORKERS = f"""
SELECT {WORKER_COLUMNS} FROM workers
WHERE organization_id = $1 AND ($2::text[] IS NULL OR queue_names <@ $2::text[])
ORDER BY last_heartbeat DESC LIMIT 100
"""

# Draining is sticky: only the worker itself leaves it by reporting another status.
HEARTBEAT = """
UPDATE workers SET last_heartbeat = now(), current_job_count = $3, status = $4,
    metadata = COALESCE($5, metadata), updated_at = now()
WHERE id = $1 AND organization_id = $2
"""

DEREGISTER = """
UPDATE workers SET status = 'offline', current_job_count = 0, updated_at = now()
WHERE id = $1 AND organization_id = $2
RETURNING id, queue_name
"""
