"""Workflow SQL (CONTRACT §7.11, §9.4). Counters and status transitions after job changes
are made by `spooled_settle_jobs` (migration 0005), called from the job statements."""

from __future__ import annotations

from spooled_backend.jobs.dependencies import SETTLED_COLUMN, settled_cte

# A workflow is stored `pending` until its first job ends; it shows `running` as soon as any
# of its jobs has left pending/scheduled (claims do not touch the workflow row: hot path).
_STATUS = """
CASE WHEN w.status = 'pending' AND EXISTS (
         SELECT 1 FROM jobs j WHERE j.workflow_id = w.id
           AND j.status NOT IN ('pending', 'scheduled'))
     THEN 'running' ELSE w.status END
"""

_STARTED = """
COALESCE(w.started_at, (SELECT min(j.started_at) FROM jobs j WHERE j.workflow_id = w.id))
"""

WORKFLOW_COLUMNS = f"""
w.id, w.organization_id, w.name, w.description, {_STATUS} AS status, w.total_jobs,
w.completed_jobs, w.failed_jobs, w.created_at, {_STARTED} AS started_at, w.completed_at,
w.metadata
"""

# $1 org, $2 name, $3 description, $4 metadata, $5 total jobs
INSERT_WORKFLOW = """
INSERT INTO workflows (organization_id, name, description, metadata, total_jobs)
VALUES ($1, $2, $3, $4, $5) RETURNING id, status
"""

# All jobs of a new workflow in one statement. Arrays of equal length: $3 ids, $4 queue names,
# $5 payloads, $6 priorities, $7 max_retries (NULL = queue default), $8 timeouts (NULL = queue
# default), $9 expires_at, $10 keys, $11 modes, $12 dependencies_met, $13 has_dependents,
# $14 steps (topological order), $15 tags; $1 org, $2 workflow, $16/$17 server defaults.
INSERT_WORKFLOW_JOBS = """
WITH items AS (
    SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::int[],
                         $9::timestamptz[], $10::text[], $11::text[], $12::bool[], $13::bool[],
                         $14::int[], $15::text[])
        AS t(id, queue_name, payload, priority, max_retries, timeout_seconds, expires_at, key,
             mode, met, has_dependents, step, tags)
), ins AS (
    INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries,
                      timeout_seconds, expires_at, workflow_id, workflow_step, workflow_key,
                      dependency_mode, dependencies_met, has_dependents, tags)
    SELECT t.id, $1, t.queue_name, 'pending', COALESCE(t.payload::jsonb, 'null'::jsonb), t.priority,
           COALESCE(t.max_retries, c.max_retries, $16::int),
           COALESCE(t.timeout_seconds, c.default_timeout, $17::int),
           t.expires_at, $2, t.step, t.key, t.mode, t.met, t.has_dependents, t.tags::jsonb
    FROM items t
    LEFT JOIN queue_config c ON c.organization_id = $1 AND c.queue_name = t.queue_name
    ORDER BY t.step
    RETURNING id, queue_name, priority, status
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $1, id, 'created', jsonb_build_object('queue_name', queue_name, 'status', status,
                                                 'workflow_id', $2::text)
    FROM ins
)
SELECT id, queue_name, priority, status FROM ins
"""

# $1 org, $2 child ids, $3 parent ids, $4 types
INSERT_EDGES = """
INSERT INTO job_dependencies (organization_id, job_id, depends_on_job_id, dependency_type)
SELECT $1, c, p, t FROM unnest($2::text[], $3::text[], $4::text[]) AS e(c, p, t)
"""

# $1 org, $2 status filter (NULL = any), $3 limit, $4 offset, $5 scope (NULL = all): scoped
# keys only see workflows whose jobs are all in their queues.
LIST_WORKFLOWS = f"""
SELECT * FROM (
    SELECT {WORKFLOW_COLUMNS} FROM workflows w
    WHERE w.organization_id = $1
      AND ($5::text[] IS NULL OR NOT EXISTS (
            SELECT 1 FROM jobs j WHERE j.workflow_id = w.id AND NOT j.queue_name = ANY($5)))
) s
WHERE ($2::text IS NULL OR s.status = $2)
ORDER BY s.created_at DESC, s.id
LIMIT $3 OFFSET $4
"""

# $1 id, $2 org, $3 scope
GET_WORKFLOW = f"""
SELECT {WORKFLOW_COLUMNS} FROM workflows w
WHERE w.id = $1 AND w.organization_id = $2
  AND ($3::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs j WHERE j.workflow_id = w.id AND NOT j.queue_name = ANY($3)))
"""

# Lock order everywhere: jobs (parent, then its waiting dependents) before the workflow row,
# as the settle function does; cancel locks the workflow's waiting jobs first.
LOCK_WAITING_JOBS = """
SELECT id FROM jobs
WHERE workflow_id = $1 AND organization_id = $2 AND status IN ('pending', 'scheduled')
ORDER BY id FOR UPDATE
"""

LOCK_WORKFLOW = """
SELECT id, status FROM workflows WHERE id = $1 AND organization_id = $2 FOR UPDATE
"""

WORKFLOW_JOBS = """
SELECT j.id, j.organization_id, j.workflow_key, j.queue_name, j.payload, j.status, j.priority,
       j.retry_count, j.max_retries, j.timeout_seconds, j.created_at, j.scheduled_at,
       j.started_at, j.completed_at, j.result, j.last_error, j.tags, j.workflow_id,
       j.parent_job_id, j.dependency_mode, j.dependencies_met,
       ARRAY(SELECT d.depends_on_job_id FROM job_dependencies d WHERE d.job_id = j.id
             ORDER BY d.depends_on_job_id) AS depends_on
FROM jobs j
WHERE j.workflow_id = $1 AND j.organization_id = $2 AND ($3::text IS NULL OR j.id = $3)
ORDER BY j.workflow_step NULLS LAST, j.created_at, j.id
"""

WORKFLOW_EDGES = """
SELECT d.depends_on_job_id AS parent_job_id, d.job_id AS child_job_id, d.dependency_type
FROM job_dependencies d JOIN jobs j ON j.id = d.job_id
WHERE j.workflow_id = $1 AND j.organization_id = $2
ORDER BY j.workflow_step NULLS LAST, d.job_id, d.depends_on_job_id
"""

# Cancel: $1 workflow, $2 org. Pending/scheduled jobs → cancelled (processing ones run on);
# the settle tail cancels dependents outside the workflow and recomputes the counters.
# Run after MARK_CANCELLED (a separate statement: the settle tail updates the same row).
CANCEL_WORKFLOW = f"""
WITH picked AS (
    SELECT id, status FROM jobs
    WHERE workflow_id = $1 AND organization_id = $2 AND status IN ('pending', 'scheduled')
    ORDER BY id FOR UPDATE
), done AS (
    UPDATE jobs j SET status = 'cancelled', completed_at = now(), updated_at = now(),
        last_error = 'Workflow cancelled'
    FROM picked p WHERE j.id = p.id
    RETURNING j.id, j.queue_name, p.status AS old_status, j.has_dependents, j.workflow_id
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $2, id, 'cancelled', jsonb_build_object('reason', 'workflow cancelled') FROM done
), {settled_cte("done")}
SELECT id, queue_name, old_status, {SETTLED_COLUMN} FROM done
"""

# Retry: $1 workflow, $2 org. failed/deadletter/cancelled jobs → pending, counters and
# timestamps reset; the caller then settles them (gates recomputed, workflow → running).
RETRY_WORKFLOW_JOBS = """
WITH picked AS (
    SELECT id, status FROM jobs
    WHERE workflow_id = $1 AND organization_id = $2
      AND status IN ('failed', 'deadletter', 'cancelled')
    ORDER BY id FOR UPDATE
), done AS (
    UPDATE jobs j SET status = 'pending', retry_count = 0, last_error = NULL, result = NULL,
        scheduled_at = NULL, started_at = NULL, completed_at = NULL, lease_id = NULL,
        lease_expires_at = NULL, assigned_worker_id = NULL, dependencies_met = false,
        updated_at = now()
    FROM picked p WHERE j.id = p.id
    RETURNING j.id, j.queue_name, p.status AS old_status
), dlq AS (
    DELETE FROM dead_letter_queue WHERE organization_id = $2 AND job_id IN (SELECT id FROM done)
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $2, id, 'retried', jsonb_build_object('source', 'workflow', 'old_status', old_status)
    FROM done
)
SELECT id, queue_name, old_status FROM done
"""

MARK_CANCELLED = """
UPDATE workflows SET status = 'cancelled', completed_at = COALESCE(completed_at, now())
WHERE id = $1 AND organization_id = $2
"""
