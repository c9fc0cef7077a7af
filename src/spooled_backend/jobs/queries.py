"""The job SQL: one named statement per operation, parameters always bound.

The claim is a single statement: `FOR UPDATE SKIP LOCKED` picks rows along `jobs_claim_idx`
(organization_id, queue_name, priority DESC, created_at) WHERE status IN (pending, scheduled)
AND dependencies_met, and the UPDATE … RETURNING hands them out with a fresh `lease_id`.
Acknowledgements (complete/fail/heartbeat) lock the row, apply the fenced update, write history,
and return the row's prior state so the caller can tell 404 from 409 without a second query.
Complete and fail keep the last `lease_id` on the row (only `lease_expires_at` is cleared), so a
late acknowledgement from a worker whose lease was taken over is told LEASE_EXPIRED rather than
"already completed"; the API shows `lease_id` only while a job is processing.

Lookups of one job by id check its tenant as `(organization_id = $n) IS TRUE`: the same rows,
but a filter on the primary-key probe that can never become the access path. As a plain
equality, generic plans made on stale statistics (a tenant that grew since the last ANALYZE)
tied the primary key with `jobs_org_status_created_idx` and could scan the tenant's jobs to
find one (auto_explain on the bench: 151,000 rows per acknowledged job;
tests/integration/test_onetrip.py).
"""

from __future__ import annotations

from spooled_backend.jobs.dependencies import SETTLED_COLUMN, settled_cte
from spooled_backend.queues import ratelimit

JOB_COLUMNS = """
    id, organization_id, queue_name, status, payload, result, retry_count, max_retries,
    last_error, created_at, scheduled_at, started_at, completed_at, expires_at, priority, tags,
    timeout_seconds, parent_job_id, completion_webhook, assigned_worker_id, lease_id,
    lease_expires_at, idempotency_key, updated_at, workflow_id, dependency_mode, dependencies_met
"""

SUMMARY_COLUMNS = """
    id, queue_name, status, priority, retry_count, max_retries,
    CASE WHEN jsonb_typeof(payload -> 'job_type') = 'string' THEN payload ->> 'job_type' ELSE '' END
        AS job_type,
    last_error, created_at, scheduled_at, started_at, completed_at
"""

QUEUE_DEFAULTS = """
SELECT max_retries, default_timeout FROM queue_config WHERE organization_id = $1 AND queue_name = $2
"""

# Flags and row-locks the parent of a new child (CONTRACT §8.9, R11): its completion then
# either committed before (we read `completed`) or waits for us (and settles our edge).
PARENT_JOB = """
UPDATE jobs SET has_dependents = true WHERE id = $1 AND (organization_id = $2) IS TRUE
RETURNING queue_name, status
"""

# $1 org, $2 queue, $3 payload, $4 priority, $5 max_retries (NULL = queue default),
# $6 timeout (NULL = queue default), $7 scheduled_at, $8 expires_at, $9 idempotency_key, $10 tags,
# $11 parent, $12 webhook, $13 webhook secret, $14 dependencies_met, $15/$16 server defaults for
# max_retries/timeout when the queue has no config row (CONTRACT §9.1).
# A JSON null payload arrives as SQL NULL and is stored as jsonb 'null'.
INSERT_JOB = """
WITH ins AS (
    INSERT INTO jobs (organization_id, queue_name, status, payload, priority, max_retries,
                      timeout_seconds, scheduled_at, expires_at, idempotency_key, tags,
                      parent_job_id, completion_webhook, completion_webhook_secret,
                      dependencies_met)
    VALUES ($1, $2, CASE WHEN $7::timestamptz > now() THEN 'scheduled' ELSE 'pending' END,
            COALESCE($3::jsonb, 'null'::jsonb), $4,
            COALESCE($5::int, (SELECT c.max_retries FROM queue_config c
                               WHERE c.organization_id = $1 AND c.queue_name = $2), $15::int),
            COALESCE($6::int, (SELECT c.default_timeout FROM queue_config c
                               WHERE c.organization_id = $1 AND c.queue_name = $2), $16::int),
            $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL
    DO UPDATE SET updated_at = now()
    RETURNING id, status, priority, (xmax = 0) AS created
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $1, id, 'created', jsonb_build_object('queue_name', $2::text, 'status', status)
    FROM ins WHERE created
)
SELECT id, status, priority, created FROM ins
"""

INSERT_DEPENDENCY = """
INSERT INTO job_dependencies (organization_id, job_id, depends_on_job_id, dependency_type)
VALUES ($1, $2, $3, 'all') ON CONFLICT DO NOTHING
"""

# Many jobs of one organization, each with its own queue and options: coalesced single creates
# (jobs/coalesce.py, `service.create_jobs`) and bulk enqueue (jobs/batch.py), both through
# `service.insert_jobs` (`insert_arguments` gives the parameters). Arrays of equal length: $2
# queue names, $3 payloads (JSON text), $4 priorities, $5 max_retries (NULL = queue config or
# $14), $6 timeouts (NULL = queue config or $15), $7 scheduled_at, $8 expires_at, $9
# idempotency keys (distinct within one call), $10 tags (JSON text), $11 completion webhooks,
# $12 their secrets, $13 new job ids (chosen by the caller so each item is matched to its row).
# Rows are inserted in idempotency-key order so concurrent batches with overlapping keys take
# their unique-index locks in the same order (no deadlock).
INSERT_JOBS_MANY = """
WITH items AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[],
                         $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[],
                         $11::text[], $12::text[], $13::text[])
        WITH ORDINALITY AS t(queue_name, payload, priority, max_retries, timeout_seconds,
                             scheduled_at, expires_at, idempotency_key, tags, completion_webhook,
                             completion_webhook_secret, new_id, ord)
), ins AS (
    INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries,
                      timeout_seconds, scheduled_at, expires_at, idempotency_key, tags,
                      completion_webhook, completion_webhook_secret, dependencies_met)
    SELECT t.new_id, $1, t.queue_name,
           CASE WHEN t.scheduled_at > now() THEN 'scheduled' ELSE 'pending' END,
           COALESCE(t.payload::jsonb, 'null'::jsonb), t.priority,
           COALESCE(t.max_retries, c.max_retries, $14::int),
           COALESCE(t.timeout_seconds, c.default_timeout, $15::int),
           t.scheduled_at, t.expires_at, t.idempotency_key, t.tags::jsonb, t.completion_webhook,
           t.completion_webhook_secret, true
    FROM items t
    LEFT JOIN queue_config c ON c.organization_id = $1 AND c.queue_name = t.queue_name
    ORDER BY t.idempotency_key NULLS LAST, t.ord
    ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL
    DO UPDATE SET updated_at = now()
    RETURNING id, idempotency_key, queue_name, status, priority, (xmax = 0) AS created
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $1, id, 'created', jsonb_build_object('queue_name', queue_name, 'status', status)
    FROM ins WHERE created
)
SELECT id, idempotency_key, queue_name, status, priority, created FROM ins
"""

GET_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND (organization_id = $2) IS TRUE"

# $1 org, $2 queue, $3 limit, $4 worker_id, $5 lease seconds
# Rate-limited queues (queue_config.rate_limit, jobs/second) cap the LIMIT by their token bucket
# and spend one token per job handed out; see queues/ratelimit.py. Other queues take no lock.
CLAIM_JOBS = f"""
WITH {ratelimit.BUCKET_CTES}, picked AS (
    SELECT id FROM jobs
    WHERE organization_id = $1 AND queue_name = $2
      AND status IN ('pending', 'scheduled') AND dependencies_met
      AND (scheduled_at IS NULL OR scheduled_at <= now())
      AND (expires_at IS NULL OR expires_at > now())
      AND NOT EXISTS (SELECT 1 FROM queue_config q
                      WHERE q.organization_id = $1 AND q.queue_name = $2 AND NOT q.enabled)
    ORDER BY priority DESC, created_at ASC
    LIMIT {ratelimit.ALLOWANCE}
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs j SET status = 'processing', lease_id = gen_random_uuid()::text,
        assigned_worker_id = $4, lease_expires_at = now() + make_interval(secs => $5),
        started_at = COALESCE(j.started_at, now()), updated_at = now()
    WHERE j.id = ANY (ARRAY(SELECT id FROM picked))  -- pkey lookups whatever the LIMIT estimate
    RETURNING j.id, j.queue_name, j.payload, j.retry_count, j.max_retries, j.timeout_seconds,
              j.lease_expires_at, j.lease_id, j.priority, j.created_at, j.organization_id,
              j.status, j.result, j.last_error, j.scheduled_at, j.started_at, j.completed_at,
              j.assigned_worker_id, j.idempotency_key
), {ratelimit.SPEND_CTE}, hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, worker_id, details)
    SELECT $1, id, 'claimed', $4, jsonb_build_object('lease_id', lease_id, 'attempt', retry_count + 1)
    FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, created_at ASC
"""

# The earliest future `scheduled_at` of a queue's waiting jobs (epoch seconds): a claimer that
# waits (`wait_ms`) arms a timer for it (jobs/wakeup.py). Runs only when a waiting claim found
# nothing, along jobs_claim_idx.
NEXT_DUE = """
SELECT extract(epoch FROM min(scheduled_at)) FROM jobs
WHERE organization_id = $1 AND queue_name = $2 AND status IN ('pending', 'scheduled')
  AND dependencies_met AND scheduled_at > now()
"""

# Fenced acknowledgements. $1 id, $2 org, $3 worker_id, $4 lease_id (NULL = a legacy client that
# sends none: fenced by worker, processing status and unexpired lease alone, CONTRACT §21 R1).
# `prior` is the row before the update; `done` is non-empty when the fence held.
_FENCE = """
    j.id = p.id AND p.status = 'processing' AND p.assigned_worker_id = $3
    AND ($4::text IS NULL OR p.lease_id = $4) AND p.lease_expires_at > now()
"""

def _prior(scope_param: int) -> str:
    """The locked row before the ack; `$scope_param` is the key's queue scope (NULL = all), so a
    job outside the scope is simply not found (CONTRACT §3.2) and nothing is written."""
    return f"""
prior AS (
    SELECT id, status, assigned_worker_id, lease_id, lease_expires_at, queue_name, started_at,
           retry_count, max_retries, payload, workflow_id, has_dependents
    FROM jobs WHERE id = $1 AND (organization_id = $2) IS TRUE
      AND (${scope_param}::text[] IS NULL OR queue_name = ANY(${scope_param}::text[]))
    FOR UPDATE
)
"""

# $5 lease seconds, $6 queue scope
HEARTBEAT_JOB = f"""
WITH {_prior(6)}, done AS (
    UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => $5), updated_at = now()
    FROM prior p WHERE {_FENCE}
    RETURNING j.id, j.lease_expires_at
)
SELECT p.*, (SELECT lease_expires_at FROM done) AS acked_at FROM prior p
"""

# $1 id, $2 org, $3 queue scope (NULL = all): an out-of-scope job is not found and not touched.
CANCEL_JOB = f"""
WITH prior AS (
    SELECT id, status, queue_name FROM jobs
    WHERE id = $1 AND (organization_id = $2) IS TRUE AND ($3::text[] IS NULL OR queue_name = ANY($3))
    FOR UPDATE
), done AS (
    UPDATE jobs j SET status = 'cancelled', completed_at = now(), updated_at = now()
    FROM prior p WHERE j.id = p.id AND p.status IN ('pending', 'scheduled')
    RETURNING j.id, j.has_dependents, j.workflow_id
), {settled_cte("done")}, hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $2, id, 'cancelled', jsonb_build_object('reason', 'cancelled by API') FROM done
)
SELECT p.status, p.queue_name, EXISTS (SELECT 1 FROM done) AS cancelled, {SETTLED_COLUMN}
FROM prior p
"""

RETRY_JOB = f"""
WITH prior AS (
    SELECT id, status, queue_name FROM jobs WHERE id = $1 AND (organization_id = $2) IS TRUE FOR UPDATE
), done AS (
    UPDATE jobs j SET status = 'pending', retry_count = 0, last_error = NULL, scheduled_at = NULL,
        completed_at = NULL, lease_id = NULL, lease_expires_at = NULL, assigned_worker_id = NULL,
        updated_at = now()
    FROM prior p WHERE j.id = p.id AND p.status IN ('failed', 'deadletter')
    RETURNING j.id, j.has_dependents, j.workflow_id
), {settled_cte("done")}, dlq AS (
    DELETE FROM dead_letter_queue WHERE organization_id = $2 AND job_id IN (SELECT id FROM done)
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $2, id, 'retried', jsonb_build_object('old_status', (SELECT status FROM prior))
    FROM done
)
SELECT p.status, p.queue_name, EXISTS (SELECT 1 FROM done) AS retried, {SETTLED_COLUMN}
FROM prior p
"""

SET_PRIORITY = """
WITH prior AS (
    SELECT id, priority, queue_name FROM jobs
    WHERE id = $1 AND (organization_id = $2) IS TRUE AND status IN ('pending', 'scheduled') FOR UPDATE
)
UPDATE jobs j SET priority = $3, updated_at = now() FROM prior p WHERE j.id = p.id
RETURNING p.priority AS old_priority, j.priority AS new_priority, j.queue_name
"""

STATS = """
SELECT status, count(*)::bigint AS n FROM jobs
WHERE organization_id = $1 AND ($2::text IS NULL OR queue_name = $2)
  AND ($3::text[] IS NULL OR queue_name = ANY($3))
GROUP BY status
"""

BATCH_STATUS = """
SELECT id, status, queue_name, retry_count, created_at, completed_at FROM jobs
WHERE organization_id = $1 AND id = ANY($2::text[]) AND ($3::text[] IS NULL OR queue_name = ANY($3))
"""

HISTORY = """
SELECT id, job_id, event_type, worker_id, details, created_at FROM job_history
WHERE job_id = $1 AND organization_id = $2
ORDER BY created_at {direction}, id {direction}
LIMIT $3 OFFSET $4
"""

# DLQ retry: $1 org, $2 queue (nullable), $3 ids (nullable), $4 limit, $5 scope (nullable)
# Children of the retried jobs are gated again by the settle tail (CONTRACT §8.9).
RETRY_DLQ = f"""
WITH picked AS (
    SELECT id FROM jobs
    WHERE organization_id = $1 AND status = 'deadletter'
      AND ($2::text IS NULL OR queue_name = $2)
      AND ($3::text[] IS NULL OR id = ANY($3))
      AND ($5::text[] IS NULL OR queue_name = ANY($5))
    ORDER BY created_at ASC LIMIT $4
    FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE jobs j SET status = 'pending', retry_count = 0, last_error = NULL, scheduled_at = NULL,
        completed_at = NULL, lease_id = NULL, lease_expires_at = NULL, assigned_worker_id = NULL,
        updated_at = now()
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.queue_name, j.created_at, j.has_dependents, j.workflow_id
), dlq AS (
    DELETE FROM dead_letter_queue WHERE organization_id = $1 AND job_id IN (SELECT id FROM done)
), {settled_cte("done")}, hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, details)
    SELECT $1, id, 'retried', jsonb_build_object('source', 'dlq') FROM done
)
SELECT id, queue_name, {SETTLED_COLUMN} FROM done ORDER BY created_at
"""

# DLQ purge: $1 org, $2 queue (nullable), $3 older_than (nullable), $4 limit, $5 scope (nullable).
# Also drops orphan audit rows (their job is gone, e.g. by retention) in the same queue filter.
# `orphans`: jobs that depended on a purged job; the caller settles them (edges are gone then).
PURGE_DLQ = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE organization_id = $1 AND status = 'deadletter'
      AND ($2::text IS NULL OR queue_name = $2)
      AND ($3::timestamptz IS NULL OR created_at < $3)
      AND ($5::text[] IS NULL OR queue_name = ANY($5))
    ORDER BY created_at ASC LIMIT $4
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM jobs WHERE id IN (SELECT id FROM picked) RETURNING id
), audit AS (
    DELETE FROM dead_letter_queue a
    WHERE a.organization_id = $1
      AND (a.job_id IN (SELECT id FROM gone)
           OR (($2::text IS NULL OR a.queue_name = $2)
               AND ($5::text[] IS NULL OR a.queue_name = ANY($5))
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.job_id)))
)
SELECT (SELECT count(*) FROM gone)::bigint AS purged,
       ARRAY(SELECT DISTINCT d.job_id FROM job_dependencies d
             WHERE d.depends_on_job_id IN (SELECT id FROM picked)) AS orphans
"""


# Batch acknowledgement (CONTRACT §20 D5, jobs/ack.py): up to 100 completes and fails in one
# statement. $1 org, $2 worker ids text[] (one per item: the coalesced single acks of
# jobs/coalesce.py come from several workers), $3 job ids text[], $4 lease ids text[] (NULL
# element = legacy fencing, §21 R1), $5 results jsonb[], $6 kinds text[] ('complete' | 'fail'),
# $7 errors text[], $8 queue scope. Each item gets exactly the single-job rules: the same fence, retry policy
# (§8.3), DLQ row, history rows, and one settle call for every job that ended (dependents,
# workflows). Rows are locked in id order, so two overlapping batches cannot deadlock.
ACK_JOBS = f"""
WITH items AS (
    SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $2::text[])
        WITH ORDINALITY AS t(id, lease_id, result, kind, error, worker_id, ord)
), prior AS (
    -- One primary-key probe per item, locked in id order (no deadlock between batches). The
    -- locking LATERAL cannot be flattened into a join: with stale statistics (a table just
    -- filled, before autoanalyze) the planner had joined the items against every job of the
    -- organization instead (1,500 rows read for one complete; 5 M on a big tenant).
    -- The organization check is written `(…) IS TRUE` so that it only filters the probed row:
    -- as a plain equality, a generic plan made on stale statistics had used it as the access
    -- path (jobs_org_status_created_idx) and read 151,000 rows per item (auto_explain, bench).
    SELECT j.* FROM (SELECT id FROM items ORDER BY id) i
    CROSS JOIN LATERAL (
        SELECT j.id, j.status, j.assigned_worker_id, j.lease_id, j.lease_expires_at,
               j.queue_name, j.started_at, j.retry_count, j.max_retries, j.payload
        FROM jobs j
        WHERE j.id = i.id AND (j.organization_id = $1) IS TRUE
          AND ($8::text[] IS NULL OR j.queue_name = ANY($8::text[]))
        FOR UPDATE
    ) j
), done AS (
    UPDATE jobs j SET
        status = CASE WHEN i.kind = 'complete' THEN 'completed'
                      WHEN p.retry_count < p.max_retries THEN 'pending' ELSE 'deadletter' END,
        result = CASE WHEN i.kind = 'complete' THEN i.result::jsonb ELSE j.result END,
        retry_count = CASE WHEN i.kind = 'fail' AND p.retry_count < p.max_retries
                           THEN p.retry_count + 1 ELSE p.retry_count END,
        scheduled_at = CASE WHEN i.kind = 'fail' AND p.retry_count < p.max_retries
            THEN now() + make_interval(secs => LEAST(power(2, LEAST(p.retry_count, 6)), 60))
            ELSE j.scheduled_at END,
        completed_at = CASE WHEN i.kind = 'fail' AND p.retry_count < p.max_retries
                            THEN NULL ELSE now() END,
        last_error = CASE WHEN i.kind = 'fail' THEN i.error ELSE j.last_error END,
        lease_expires_at = NULL, updated_at = now()
    FROM prior p JOIN items i ON i.id = p.id
    WHERE j.id = p.id AND p.status = 'processing' AND p.assigned_worker_id = i.worker_id
      AND (i.lease_id IS NULL OR p.lease_id = i.lease_id) AND p.lease_expires_at > now()
    RETURNING j.id, j.status, j.retry_count, j.scheduled_at, j.updated_at, j.has_dependents,
              j.workflow_id
), {settled_cte("done", "status IN ('completed', 'deadletter')")}, dlq AS (
    INSERT INTO dead_letter_queue (organization_id, job_id, queue_name, reason, original_payload,
                                   error_details)
    SELECT $1, d.id, p.queue_name, i.error, p.payload,
           jsonb_build_object('retry_count', d.retry_count, 'worker_id', i.worker_id)
    FROM done d JOIN prior p ON p.id = d.id JOIN items i ON i.id = d.id
    WHERE d.status = 'deadletter'
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, worker_id, details)
    SELECT $1, d.id,
           CASE d.status WHEN 'completed' THEN 'completed' WHEN 'deadletter' THEN 'deadlettered'
                ELSE 'retry_scheduled' END,
           i.worker_id,
           CASE WHEN d.status = 'completed' THEN NULL
                ELSE jsonb_build_object('error', i.error, 'retry_count', d.retry_count,
                     'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.scheduled_at END)
           END
    FROM done d JOIN items i ON i.id = d.id
)
SELECT i.ord, i.id AS job_id, p.status, p.assigned_worker_id, p.lease_id, p.queue_name,
       p.started_at, p.retry_count, d.status AS new_status, d.retry_count AS new_retry_count,
       d.updated_at AS acked_at, {SETTLED_COLUMN}
FROM items i LEFT JOIN prior p ON p.id = i.id LEFT JOIN done d ON d.id = i.id
ORDER BY i.ord
"""

# The statements that are a whole transaction by themselves on the hot path, run in one round
# trip (db/onetrip.py): text → generic plans (the array statements; see tenancy.begin_bound).
ONE_TRIP = {ACK_JOBS: True, INSERT_JOBS_MANY: True, CLAIM_JOBS: False, NEXT_DUE: False}
