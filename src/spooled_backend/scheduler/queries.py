"""SQL of the background sweeps. Each touches a bounded batch with SKIP LOCKED."""

from __future__ import annotations

from spooled_backend.jobs.dependencies import SETTLED_COLUMN, settled_cte

# Due scheduled jobs → pending (CONTRACT §15, every 5 s). $1 batch size.
ACTIVATE_SCHEDULED = """
WITH due AS (
    SELECT id FROM jobs WHERE status = 'scheduled' AND scheduled_at <= now()
    ORDER BY scheduled_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET status = 'pending', updated_at = now() FROM due WHERE j.id = due.id
RETURNING j.id, j.organization_id, j.queue_name
"""

def release_to_retry_or_dlq(picked: str, history_event: str) -> str:
    """SQL tail shared by the sweeps that take jobs away from their worker (CONTRACT §8.2):
    the processing jobs whose ids the CTE named `picked` yields go back to pending with the
    backoff of §8.3, or to the dead-letter queue (+ audit row) when their retries are exhausted,
    with a history row each. Uses $3 (retry reason) and $4 (exhausted reason); `history_event`
    is the SQL expression naming the history event of a retried job. Ends with the SELECT of
    `(id, organization_id, queue_name, status, retry_count, last_error, settled)` per released
    job; `settled` (the same on every row) holds the dependents/workflow effects of the
    dead-lettered ones (jobs/dependencies.py)."""
    return (
        """), done AS (
    UPDATE jobs j SET
        status = CASE WHEN j.retry_count < j.max_retries THEN 'pending' ELSE 'deadletter' END,
        scheduled_at = CASE WHEN j.retry_count < j.max_retries
            THEN now() + make_interval(secs => LEAST(power(2, LEAST(j.retry_count, 6)), 60))
            ELSE j.scheduled_at END,
        last_error = CASE WHEN j.retry_count < j.max_retries THEN $3 ELSE $4 END,
        completed_at = CASE WHEN j.retry_count < j.max_retries THEN NULL ELSE now() END,
        retry_count = CASE WHEN j.retry_count < j.max_retries THEN j.retry_count + 1
                           ELSE j.retry_count END,
        lease_id = NULL, lease_expires_at = NULL, updated_at = now()
    FROM {picked} p WHERE j.id = p.id
    RETURNING j.id, j.organization_id, j.queue_name, j.status, j.retry_count, j.payload,
              j.last_error, j.assigned_worker_id, j.has_dependents, j.workflow_id
), {settled}, dlq AS (
    INSERT INTO dead_letter_queue (organization_id, job_id, queue_name, reason, original_payload,
                                   error_details)
    SELECT organization_id, id, queue_name, last_error, payload,
           jsonb_build_object('retry_count', retry_count, 'worker_id', assigned_worker_id)
    FROM done WHERE status = 'deadletter'
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, worker_id, details)
    SELECT organization_id, id, CASE WHEN status = 'deadletter' THEN 'deadlettered'
                                     ELSE {history_event} END,
           assigned_worker_id, jsonb_build_object('error', last_error, 'retry_count', retry_count)
    FROM done
)
SELECT id, organization_id, queue_name, status, retry_count, last_error, {settled_column}
FROM done
"""
    ).format(picked=picked, history_event=history_event,
             settled=settled_cte("done", "status = 'deadletter'"), settled_column=SETTLED_COLUMN)


# Expired leases → retry with backoff or dead-letter (CONTRACT §8.2). $1 batch size,
# $2 worker id (NULL = any), $3 retry reason, $4 exhausted reason.
RECOVER_EXPIRED_LEASES = (
    """
WITH expired AS (
    SELECT id FROM jobs
    WHERE status = 'processing' AND lease_expires_at <= now()
      AND ($2::text IS NULL OR assigned_worker_id = $2)
    ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
"""
    + release_to_retry_or_dlq("expired", "'lease_expired'")
)

# pending/scheduled jobs past expires_at are never handed out; they end as cancelled (and so
# do their dependents, via the settle tail).
EXPIRE_JOBS = f"""
WITH gone AS (
    SELECT id FROM jobs
    WHERE status IN ('pending', 'scheduled') AND expires_at IS NOT NULL AND expires_at <= now()
    ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE jobs j SET status = 'cancelled', completed_at = now(), updated_at = now(),
        last_error = 'Job expired before it was processed'
    FROM gone WHERE j.id = gone.id
    RETURNING j.id, j.organization_id, j.queue_name, j.has_dependents, j.workflow_id
), {settled_cte("done")}, hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT organization_id, id, 'expired', jsonb_build_object('reason', 'expires_at passed')
    FROM done
)
SELECT id, organization_id, queue_name, {SETTLED_COLUMN} FROM done
"""

QUEUE_GAUGES = """
SELECT
    organization_id,
    queue_name,
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'processing') AS processing,
    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending')), 0)
        AS max_age
FROM jobs WHERE status IN ('pending', 'processing')
GROUP BY organization_id, queue_name
"""

WORKER_GAUGES = """
SELECT count(*) FILTER (WHERE status <> 'offline') AS active,
       count(*) FILTER (WHERE status = 'healthy') AS healthy
FROM workers WHERE last_heartbeat > now() - interval '2 minutes'
"""
