"""Job dependencies and workflows (issue 10, CONTRACT §8.9, §9.4, §21 R11).

* `jobs.has_dependents`: true once any job depends on this one (set by whoever inserts the
  edge, under the parent's row lock). Terminal transitions only settle dependents when it is
  set (or the job is in a workflow), so the common job pays nothing for dependencies.
* `jobs.workflow_key`: the `key` a workflow job was created with (returned by the workflow
  job routes; the Node SDK's `/workflows/{id}/jobs/status` reports it).
* `spooled_settle_jobs(changed, gated)`: the one place that brings dependents and workflows in
  line after jobs changed status. `changed` are jobs whose status just changed (completed,
  failed, dead-lettered, cancelled, or back to pending by a retry); `gated` are jobs whose own
  dependency set changed. Their waiting (pending/scheduled) dependents are re-evaluated:
  released (`dependencies_met = true`) when their mode allows (`all`: every dependency
  completed; `any`: one completed; no dependency rows left: released), re-gated when a
  dependency went back to pending, or cancelled with a `last_error` naming the parent when
  they can no longer run (`all`: one dependency ended failed/deadletter/cancelled; `any`: all
  did). Cancellations cascade down the graph. Then the workflows of every job touched get
  their counters and status recomputed (a cancelled workflow stays cancelled).
  Returns one row per effect for the caller's events: kind `released` / `gated` / `cancelled`
  (a job) or `workflow` (old and new status, counts).
  Concurrency: the waiting jobs are locked (id order) in one statement and evaluated in the
  next, whose snapshot therefore includes every parent transition committed while waiting;
  two parents of one child completing at once cannot both miss the release. Same for the
  workflow row.
* Existing children left gated by the R11 fault are settled once here.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SETTLE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION spooled_settle_jobs(p_changed text[], p_gated text[] DEFAULT '{}')
RETURNS TABLE (kind text, organization_id text, id text, queue_name text, old_status text,
               new_status text, detail text, total_jobs integer, completed_jobs integer,
               failed_jobs integer)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_frontier text[] := COALESCE(p_changed, '{}');
    v_kids text[] := COALESCE(p_gated, '{}');
    v_live text[];
    v_doomed text[];
    v_why text[];
    v_workflows text[];
    v_rounds integer := 0;
BEGIN
    SELECT COALESCE(array_agg(DISTINCT j.workflow_id), '{}') INTO v_workflows
    FROM jobs j WHERE j.id = ANY (v_frontier || v_kids) AND j.workflow_id IS NOT NULL;
    LOOP
        v_kids := v_kids || ARRAY(SELECT DISTINCT d.job_id FROM job_dependencies d
                                  WHERE d.depends_on_job_id = ANY (v_frontier));
        EXIT WHEN cardinality(v_kids) = 0 OR v_rounds >= 100000;
        v_rounds := v_rounds + 1;
        SELECT COALESCE(array_agg(s.id), '{}') INTO v_live FROM (
            SELECT j.id FROM jobs j
            WHERE j.id = ANY (v_kids) AND j.status IN ('pending', 'scheduled')
            ORDER BY j.id FOR UPDATE
        ) s;
        RETURN QUERY
        WITH g AS (
            SELECT c.id, c.organization_id AS org, c.queue_name AS queue, c.status AS was,
                   c.dependency_mode AS mode, c.dependencies_met AS was_met,
                   count(p.id) AS n,
                   count(p.id) FILTER (WHERE p.status = 'completed') AS ok,
                   count(p.id) FILTER (WHERE p.status IN ('failed', 'deadletter', 'cancelled')) AS dead,
                   min(p.id || ' ended ' || p.status)
                       FILTER (WHERE p.status IN ('failed', 'deadletter', 'cancelled')) AS why
            FROM jobs c
            LEFT JOIN job_dependencies d ON d.job_id = c.id
            LEFT JOIN jobs p ON p.id = d.depends_on_job_id
            WHERE c.id = ANY (v_live)
            GROUP BY c.id
        ), v AS (
            SELECT g.*,
                   (g.n = 0 OR (g.mode = 'any' AND g.ok > 0) OR (g.mode <> 'any' AND g.ok = g.n))
                       AS met,
                   (g.n > 0 AND ((g.mode = 'any' AND g.dead = g.n)
                                 OR (g.mode <> 'any' AND g.dead > 0))) AS doomed
            FROM g
        ), upd AS (
            UPDATE jobs j SET
                status = CASE WHEN v.doomed THEN 'cancelled' ELSE j.status END,
                dependencies_met = CASE WHEN v.doomed THEN false ELSE v.met END,
                completed_at = CASE WHEN v.doomed THEN now() ELSE j.completed_at END,
                last_error = CASE WHEN v.doomed
                    THEN 'Cancelled: parent job ' || v.why || ', so this job can no longer run'
                    ELSE j.last_error END,
                updated_at = now()
            FROM v WHERE j.id = v.id AND (v.doomed OR v.met <> v.was_met)
            RETURNING j.id, j.organization_id, j.queue_name, v.was, j.status, v.doomed, v.met,
                      j.last_error
        ), hist AS (
            INSERT INTO job_history (organization_id, job_id, event_type, details)
            SELECT u.organization_id, u.id, 'cancelled',
                   jsonb_build_object('reason', 'dependency', 'error', u.last_error)
            FROM upd u WHERE u.doomed
        )
        SELECT CASE WHEN u.doomed THEN 'cancelled' WHEN u.met THEN 'released' ELSE 'gated' END,
               u.organization_id, u.id, u.queue_name, u.was, u.status, u.last_error,
               NULL::integer, NULL::integer, NULL::integer
        FROM upd u;
        SELECT COALESCE(array_agg(j.id), '{}') INTO v_frontier
        FROM jobs j WHERE j.id = ANY (v_live) AND j.status = 'cancelled';
        IF cardinality(v_frontier) > 0 THEN
            -- Every waiting `all` descendant of a cancelled job is doomed too: cancel that whole
            -- closure in one statement (a chain of N jobs is not N rounds). `why` names the
            -- parent through which it was reached; `any` jobs are left to the next round.
            SELECT COALESCE(array_agg(x.id ORDER BY x.id), '{}'), COALESCE(array_agg(x.why ORDER BY x.id), '{}')
            INTO v_doomed, v_why
            FROM (
                WITH RECURSIVE down(id, why) AS (
                    SELECT d.job_id, d.depends_on_job_id
                    FROM job_dependencies d JOIN jobs c ON c.id = d.job_id
                    WHERE d.depends_on_job_id = ANY (v_frontier)
                      AND c.status IN ('pending', 'scheduled') AND c.dependency_mode = 'all'
                    UNION
                    -- LATERAL … OFFSET 0: one index probe per reached job, whatever the
                    -- (often missing) statistics say about the work table
                    SELECT k.job_id, down.id
                    FROM down, LATERAL (
                        SELECT d.job_id FROM job_dependencies d JOIN jobs c ON c.id = d.job_id
                        WHERE d.depends_on_job_id = down.id
                          AND c.status IN ('pending', 'scheduled') AND c.dependency_mode = 'all'
                        OFFSET 0
                    ) k
                )
                SELECT DISTINCT ON (down.id) down.id, down.why FROM down
                WHERE NOT down.id = ANY (v_frontier)
                ORDER BY down.id, down.why
            ) x;
            IF cardinality(v_doomed) > 0 THEN
                PERFORM 1 FROM jobs j WHERE j.id = ANY (v_doomed) ORDER BY j.id FOR UPDATE;
                RETURN QUERY
                WITH x AS (
                    SELECT t.id, t.why, o.status AS was
                    FROM unnest(v_doomed, v_why) AS t(id, why) JOIN jobs o ON o.id = t.id
                ), upd AS (
                    UPDATE jobs j SET status = 'cancelled', dependencies_met = false,
                        completed_at = now(), updated_at = now(),
                        last_error = 'Cancelled: parent job ' || x.why
                                     || ' ended cancelled, so this job can no longer run'
                    FROM x WHERE j.id = x.id AND j.status IN ('pending', 'scheduled')
                    RETURNING j.id, j.organization_id, j.queue_name, j.last_error, x.was
                ), hist AS (
                    INSERT INTO job_history (organization_id, job_id, event_type, details)
                    SELECT u.organization_id, u.id, 'cancelled',
                           jsonb_build_object('reason', 'dependency', 'error', u.last_error)
                    FROM upd u
                )
                SELECT 'cancelled', u.organization_id, u.id, u.queue_name, u.was, 'cancelled',
                       u.last_error, NULL::integer, NULL::integer, NULL::integer
                FROM upd u;
                v_frontier := v_frontier || v_doomed;
            END IF;
        END IF;
        v_workflows := v_workflows || ARRAY(
            SELECT DISTINCT j.workflow_id FROM jobs j
            WHERE j.id = ANY (v_frontier) AND j.workflow_id IS NOT NULL);
        v_kids := '{}';
    END LOOP;
    IF cardinality(v_workflows) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM workflows w WHERE w.id = ANY (v_workflows) ORDER BY w.id FOR UPDATE;
    RETURN QUERY
    WITH c AS (
        SELECT j.workflow_id AS wid, count(*) AS total,
               count(*) FILTER (WHERE j.status = 'completed') AS completed,
               count(*) FILTER (WHERE j.status IN ('failed', 'deadletter')) AS failed,
               count(*) FILTER (WHERE j.status IN ('pending', 'scheduled', 'processing')) AS active
        FROM jobs j WHERE j.workflow_id = ANY (v_workflows) GROUP BY j.workflow_id
    ), old AS (
        SELECT w.id AS wid, w.status AS was FROM workflows w WHERE w.id = ANY (v_workflows)
    ), upd AS (
        UPDATE workflows w SET
            completed_jobs = c.completed, failed_jobs = c.failed,
            status = CASE WHEN w.status = 'cancelled' THEN 'cancelled'
                          WHEN c.active > 0 THEN 'running'
                          WHEN c.completed = c.total THEN 'completed'
                          ELSE 'failed' END,
            started_at = COALESCE(w.started_at, now()),
            completed_at = CASE WHEN w.status = 'cancelled' THEN w.completed_at
                                WHEN c.active > 0 THEN NULL
                                ELSE COALESCE(w.completed_at, now()) END
        FROM c WHERE w.id = c.wid
        RETURNING w.id, w.organization_id, w.status, w.name, w.total_jobs, w.completed_jobs,
                  w.failed_jobs
    )
    SELECT 'workflow', u.organization_id, u.id, NULL::text, o.was, u.status, u.name,
           u.total_jobs, u.completed_jobs, u.failed_jobs
    FROM upd u JOIN old o ON o.wid = u.id;
END
$fn$
"""

STATEMENTS: list[str] = [
    "ALTER TABLE jobs ADD COLUMN has_dependents BOOLEAN NOT NULL DEFAULT false",
    "ALTER TABLE jobs ADD COLUMN workflow_key TEXT",
    # Children created with parent_job_id before this revision have their edge already
    # (jobs.service inserted it); make sure of it, then flag every parent.
    """INSERT INTO job_dependencies (organization_id, job_id, depends_on_job_id, dependency_type)
       SELECT organization_id, id, parent_job_id, 'all' FROM jobs
       WHERE parent_job_id IS NOT NULL AND parent_job_id <> id
       ON CONFLICT DO NOTHING""",
    """UPDATE jobs SET has_dependents = true
       WHERE id IN (SELECT depends_on_job_id FROM job_dependencies)""",
    SETTLE_FUNCTION,
    # The R11 fault left children gated after their parent ended: settle them now.
    """SELECT count(*) FROM spooled_settle_jobs('{}', ARRAY(
           SELECT id FROM jobs WHERE NOT dependencies_met AND status IN ('pending', 'scheduled')))""",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS spooled_settle_jobs(text[], text[])")
    op.execute("ALTER TABLE jobs DROP COLUMN IF EXISTS workflow_key")
    op.execute("ALTER TABLE jobs DROP COLUMN IF EXISTS has_dependents")
