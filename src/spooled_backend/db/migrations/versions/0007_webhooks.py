"""Webhooks both ways (issue 11): the outgoing outbox, its triggers, inbound log and secrets.

* `outgoing_webhook_deliveries` becomes the **outbox**. A row is written in the same
  transaction as the change that caused it and is sent later by the delivery loop
  (webhooks/tasks.py): `status = 'pending'` with `next_attempt_at` is due work; a claim moves
  `next_attempt_at` forward by the claim lease and stores a fresh `claim_token`, so several
  replicas (`FOR UPDATE SKIP LOCKED`) never send one delivery at the same time and a process
  that dies mid-send leaves a row another process retries once the lease passes. Per-job
  completion webhooks (CONTRACT §10.4) are rows with `kind = 'completion'`, no `webhook_id`,
  and the job's URL and secret copied in (`target_url`, `target_secret`).
* Events are derived by **statement-level AFTER triggers with transition tables**, one call per
  statement whatever the number of rows (claims of 100 jobs, sweeps, workflow inserts), on
  every path that changes the tables: `jobs` (job.created/started/completed/failed/
  deadlettered/cancelled/retried + completion webhooks), `queue_config` (queue.paused/resumed),
  `workers` (worker.registered/deregistered), `schedule_runs` (schedule.triggered) and
  `workflows` (workflow.completed/failed). A row is inserted only when the organization has an
  enabled subscription to that event (or the job has a `completion_webhook`); with none, the
  trigger's cost is one indexed probe of `outgoing_webhooks` per statement.
  The inserting transaction also sends `NOTIFY spooled_webhook_outbox` (delivered at commit).
  `job.created` carries `source` / `schedule_id` when the creating transaction set
  `spooled.job_source` / `spooled.schedule_id` (`set_config(..., true)`), as ingestion does.
* `webhook_deliveries` (inbound log) gains `error` and `delivery_id` (the provider's id).
* `incoming_webhook_secrets`: per-organization signing secrets for GitHub and Stripe ingestion
  (set with `PUT /api/v1/incoming-webhooks/{provider}`), RLS like every tenant table.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# RFC 3339 UTC with microseconds, as the API writes timestamps.
_NOW_TEXT = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# Fan one `events(organization_id, event, data)` relation out to the enabled subscriptions.
# `%s` is the SELECT producing `events`; it is a SQL fragment of this file, never user input.
_FAN_OUT = f"""
    INSERT INTO outgoing_webhook_deliveries
        (id, organization_id, webhook_id, kind, job_id, event, payload, next_attempt_at)
    SELECT x.id, x.organization_id, x.webhook_id, 'subscription', x.job_id, x.event,
           jsonb_build_object('id', x.id, 'event', x.event, 'created_at', {_NOW_TEXT},
                              'data', x.data),
           now()
    FROM (
        SELECT gen_random_uuid()::text AS id, e.organization_id, w.id AS webhook_id,
               e.job_id, e.event, e.data
        FROM (%s) e
        JOIN outgoing_webhooks w
          ON w.organization_id = e.organization_id AND w.enabled AND e.event = ANY (w.events)
    ) x
"""

_NOTIFY = """
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF inserted > 0 THEN
        PERFORM pg_notify('spooled_webhook_outbox', '');
    END IF;
"""

JOBS_INSERT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spooled_outbox_jobs_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint;
    orgs text[];
BEGIN
    -- One small query over the transition table, then a plain indexed probe (whose plan
    -- PL/pgSQL keeps): organizations without a `job.created` subscription stop here.
    SELECT array_agg(DISTINCT organization_id) INTO orgs FROM new_rows;
    IF NOT EXISTS (SELECT 1 FROM outgoing_webhooks w
                   WHERE w.organization_id = ANY (orgs) AND w.enabled
                     AND 'job.created' = ANY (w.events)) THEN
        RETURN NULL;
    END IF;
    {_FAN_OUT % '''
        SELECT n.organization_id, n.id AS job_id, 'job.created'::text AS event,
               jsonb_strip_nulls(jsonb_build_object(
                   'job_id', n.id, 'queue_name', n.queue_name, 'priority', n.priority,
                   'status', n.status,
                   'source', NULLIF(current_setting('spooled.job_source', true), ''),
                   'schedule_id', NULLIF(current_setting('spooled.schedule_id', true), ''))) AS data
        FROM new_rows n
    '''};
    {_NOTIFY}
    RETURN NULL;
END
$fn$
"""

# Status transitions → events (CONTRACT §10.1). Automatic retries (processing → pending) and
# scheduled → pending activation send nothing; a manual/DLQ/workflow retry is `job.retried`.
_JOB_EVENTS = """
    SELECT c.organization_id, c.id AS job_id, ev.event, ev.data
    FROM changed c
    CROSS JOIN LATERAL (VALUES
        (CASE WHEN c.status = 'processing' AND c.old_status IN ('pending', 'scheduled')
              THEN 'job.started' END,
         jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name,
                            'worker_id', c.assigned_worker_id)),
        (CASE WHEN c.status = 'completed' THEN 'job.completed' END,
         jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name, 'status', c.status,
                            'result', c.result)),
        (CASE WHEN c.status IN ('failed', 'deadletter') THEN 'job.failed' END,
         jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name, 'status', c.status,
                            'error', c.last_error)),
        (CASE WHEN c.status = 'deadletter' THEN 'job.deadlettered' END,
         jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name, 'status', c.status,
                            'error', c.last_error, 'retry_count', c.retry_count)),
        (CASE WHEN c.status = 'cancelled' THEN 'job.cancelled' END,
         jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name, 'status', c.status,
                            'old_status', c.old_status)),
        (CASE WHEN c.status = 'pending' AND c.old_status IN ('failed', 'deadletter', 'cancelled')
              THEN 'job.retried' END,
         jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name, 'status', c.status,
                            'old_status', c.old_status))
    ) AS ev(event, data)
    WHERE ev.event IS NOT NULL
"""

JOBS_UPDATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spooled_outbox_jobs_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint := 0;
    completions bigint := 0;
BEGIN
    -- One query decides whether there is anything to do: a row whose status changed, in an
    -- organization with an enabled subscription or with a completion webhook. Statements that
    -- change no status (heartbeats, priority, gating) and organizations without webhooks stop
    -- here.
    IF NOT EXISTS (
        SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status
          AND (n.completion_webhook IS NOT NULL
               OR EXISTS (SELECT 1 FROM outgoing_webhooks w
                          WHERE w.organization_id = n.organization_id AND w.enabled))) THEN
        RETURN NULL;
    END IF;
    WITH changed AS (
        SELECT n.*, o.status AS old_status
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status
    ), subscribed AS (
        {_FAN_OUT % _JOB_EVENTS}
        RETURNING 1
    ), completion AS (
        INSERT INTO outgoing_webhook_deliveries
            (id, organization_id, webhook_id, kind, job_id, target_url, target_secret, event,
             payload, next_attempt_at)
        SELECT x.id, x.organization_id, NULL, 'completion', x.job_id, x.url, x.secret, x.event,
               jsonb_build_object('id', x.id, 'event', x.event, 'created_at', {_NOW_TEXT},
                                  'data', x.data),
               now()
        FROM (
            SELECT gen_random_uuid()::text AS id, c.organization_id, c.id AS job_id,
                   c.completion_webhook AS url, c.completion_webhook_secret AS secret,
                   CASE WHEN c.status = 'completed' THEN 'job.completed' ELSE 'job.failed' END
                       AS event,
                   CASE WHEN c.status = 'completed'
                        THEN jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name,
                                                'status', c.status, 'result', c.result)
                        ELSE jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name,
                                                'status', c.status, 'error', c.last_error)
                   END AS data
            FROM changed c
            WHERE c.completion_webhook IS NOT NULL
              AND c.status IN ('completed', 'failed', 'deadletter')
        ) x
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM subscribed), (SELECT count(*) FROM completion)
    INTO inserted, completions;
    IF inserted + completions > 0 THEN
        PERFORM pg_notify('spooled_webhook_outbox', '');
    END IF;
    RETURN NULL;
END
$fn$
"""

QUEUE_CONFIG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spooled_outbox_queue_config() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_FAN_OUT % '''
            SELECT n.organization_id, NULL::text AS job_id, 'queue.paused'::text AS event,
                   jsonb_strip_nulls(jsonb_build_object(
                       'queue_name', n.queue_name,
                       'reason', n.settings ->> 'paused_reason')) AS data
            FROM new_rows n WHERE NOT n.enabled
        '''};
    ELSE
        {_FAN_OUT % '''
            SELECT n.organization_id, NULL::text AS job_id,
                   CASE WHEN n.enabled THEN 'queue.resumed' ELSE 'queue.paused' END AS event,
                   jsonb_strip_nulls(jsonb_build_object(
                       'queue_name', n.queue_name,
                       'reason', CASE WHEN NOT n.enabled
                                      THEN n.settings ->> 'paused_reason' END)) AS data
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.enabled IS DISTINCT FROM o.enabled
        '''};
    END IF;
    {_NOTIFY}
    RETURN NULL;
END
$fn$
"""

# Registration: a new row, or an offline worker coming back (re-register or heartbeat).
# Deregistration: any live status → offline (deregister, or the liveness sweep).
WORKERS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spooled_outbox_workers() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_FAN_OUT % '''
            SELECT n.organization_id, NULL::text AS job_id, 'worker.registered'::text AS event,
                   jsonb_build_object('worker_id', n.id, 'queue_name', n.queue_name,
                                      'hostname', n.hostname) AS data
            FROM new_rows n
        '''};
    ELSE
        {_FAN_OUT % '''
            SELECT n.organization_id, NULL::text AS job_id,
                   CASE WHEN n.status = 'offline' THEN 'worker.deregistered'
                        ELSE 'worker.registered' END AS event,
                   jsonb_build_object('worker_id', n.id, 'queue_name', n.queue_name,
                                      'hostname', n.hostname) AS data
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.status = 'offline') <> (o.status = 'offline')
        '''};
    END IF;
    {_NOTIFY}
    RETURN NULL;
END
$fn$
"""

SCHEDULE_RUNS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spooled_outbox_schedule_runs() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_FAN_OUT % '''
            SELECT s.organization_id, n.job_id, 'schedule.triggered'::text AS event,
                   jsonb_build_object('schedule_id', s.id, 'job_id', n.job_id,
                                      'queue_name', s.queue_name, 'name', s.name) AS data
            FROM new_rows n JOIN schedules s ON s.id = n.schedule_id
            WHERE n.job_id IS NOT NULL
        '''};
    ELSE
        {_FAN_OUT % '''
            SELECT s.organization_id, n.job_id, 'schedule.triggered'::text AS event,
                   jsonb_build_object('schedule_id', s.id, 'job_id', n.job_id,
                                      'queue_name', s.queue_name, 'name', s.name) AS data
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            JOIN schedules s ON s.id = n.schedule_id
            WHERE n.job_id IS NOT NULL AND o.job_id IS NULL
        '''};
    END IF;
    {_NOTIFY}
    RETURN NULL;
END
$fn$
"""

WORKFLOWS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spooled_outbox_workflows() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    inserted bigint;
BEGIN
    {_FAN_OUT % '''
        SELECT n.organization_id, NULL::text AS job_id, 'workflow.' || n.status AS event,
               jsonb_build_object('workflow_id', n.id, 'name', n.name, 'status', n.status,
                                  'total_jobs', n.total_jobs, 'completed_jobs', n.completed_jobs,
                                  'failed_jobs', n.failed_jobs) AS data
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status IN ('completed', 'failed') AND n.status IS DISTINCT FROM o.status
    '''};
    {_NOTIFY}
    RETURN NULL;
END
$fn$
"""


def _trigger(table: str, when: str, function: str) -> str:
    new = "NEW TABLE AS new_rows"
    old = " OLD TABLE AS old_rows" if when == "UPDATE" else ""
    return (
        f"CREATE TRIGGER spooled_outbox_{table}_{when.lower()} AFTER {when} ON {table} "
        f"REFERENCING {new}{old} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


TRIGGERS = [
    ("jobs", "INSERT", "spooled_outbox_jobs_insert"),
    ("jobs", "UPDATE", "spooled_outbox_jobs_update"),
    ("queue_config", "INSERT", "spooled_outbox_queue_config"),
    ("queue_config", "UPDATE", "spooled_outbox_queue_config"),
    ("workers", "INSERT", "spooled_outbox_workers"),
    ("workers", "UPDATE", "spooled_outbox_workers"),
    ("schedule_runs", "INSERT", "spooled_outbox_schedule_runs"),
    ("schedule_runs", "UPDATE", "spooled_outbox_schedule_runs"),
    ("workflows", "UPDATE", "spooled_outbox_workflows"),
]

GRANT_TENANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spooled_tenant') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON incoming_webhook_secrets TO spooled_tenant;
    END IF;
END $$
"""

STATEMENTS: list[str] = [
    # ---- the outbox ---------------------------------------------------------------------
    "ALTER TABLE outgoing_webhook_deliveries ALTER COLUMN webhook_id DROP NOT NULL",
    """ALTER TABLE outgoing_webhook_deliveries
        ADD COLUMN kind TEXT NOT NULL DEFAULT 'subscription'
            CHECK (kind IN ('subscription', 'completion')),
        ADD COLUMN job_id TEXT,
        ADD COLUMN target_url TEXT,
        ADD COLUMN target_secret TEXT,
        ADD COLUMN next_attempt_at TIMESTAMPTZ,
        ADD COLUMN claim_token TEXT,
        ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        ADD CONSTRAINT outgoing_webhook_deliveries_target_check
            CHECK (webhook_id IS NOT NULL OR (kind = 'completion' AND target_url IS NOT NULL))""",
    # The dispatcher's claim: due rows of every organization, oldest due first. It is the one
    # cross-tenant index of the table (the loop serves all organizations).
    """CREATE INDEX outgoing_webhook_deliveries_due_idx
       ON outgoing_webhook_deliveries (next_attempt_at) WHERE status = 'pending'""",
    """CREATE INDEX outgoing_webhook_deliveries_org_hook_idx
       ON outgoing_webhook_deliveries (organization_id, webhook_id, created_at DESC)""",
    """ALTER TABLE outgoing_webhooks
        ADD CONSTRAINT outgoing_webhooks_format_check
            CHECK (format IN ('json', 'slack', 'discord', 'teams'))""",
    # ---- inbound log and per-organization ingestion secrets --------------------------------
    """ALTER TABLE webhook_deliveries
        ADD COLUMN error TEXT,
        ADD COLUMN delivery_id TEXT""",
    """CREATE INDEX webhook_deliveries_org_status_created_idx
       ON webhook_deliveries (organization_id, status, created_at DESC)""",
    """
    CREATE TABLE incoming_webhook_secrets (
        organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        provider TEXT NOT NULL CHECK (provider IN ('github', 'stripe')),
        secret TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (organization_id, provider)
    )
    """,
    "SELECT spooled_enable_tenant_rls('incoming_webhook_secrets')",
    GRANT_TENANT,
    # ---- event triggers ---------------------------------------------------------------------
    JOBS_INSERT_FUNCTION,
    JOBS_UPDATE_FUNCTION,
    QUEUE_CONFIG_FUNCTION,
    WORKERS_FUNCTION,
    SCHEDULE_RUNS_FUNCTION,
    WORKFLOWS_FUNCTION,
    *(_trigger(table, when, fn) for table, when, fn in TRIGGERS),
]

FUNCTIONS = [
    "spooled_outbox_jobs_insert",
    "spooled_outbox_jobs_update",
    "spooled_outbox_queue_config",
    "spooled_outbox_workers",
    "spooled_outbox_schedule_runs",
    "spooled_outbox_workflows",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table, when, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS spooled_outbox_{table}_{when.lower()} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("DROP TABLE IF EXISTS incoming_webhook_secrets")
    op.execute("DROP INDEX IF EXISTS webhook_deliveries_org_status_created_idx")
    op.execute("ALTER TABLE webhook_deliveries DROP COLUMN IF EXISTS error, "
               "DROP COLUMN IF EXISTS delivery_id")
    op.execute("ALTER TABLE outgoing_webhooks DROP CONSTRAINT IF EXISTS outgoing_webhooks_format_check")
    op.execute("DROP INDEX IF EXISTS outgoing_webhook_deliveries_org_hook_idx")
    op.execute("DROP INDEX IF EXISTS outgoing_webhook_deliveries_due_idx")
    op.execute("DELETE FROM outgoing_webhook_deliveries WHERE webhook_id IS NULL")
    op.execute(
        "ALTER TABLE outgoing_webhook_deliveries "
        "DROP CONSTRAINT IF EXISTS outgoing_webhook_deliveries_target_check, "
        "DROP COLUMN IF EXISTS kind, DROP COLUMN IF EXISTS job_id, "
        "DROP COLUMN IF EXISTS target_url, DROP COLUMN IF EXISTS target_secret, "
        "DROP COLUMN IF EXISTS next_attempt_at, DROP COLUMN IF EXISTS claim_token, "
        "DROP COLUMN IF EXISTS updated_at"
    )
    op.execute("ALTER TABLE outgoing_webhook_deliveries ALTER COLUMN webhook_id SET NOT NULL")
