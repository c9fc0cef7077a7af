"""Hot path (issue 8): revocation NOTIFY for the in-process API-key cache.

* `spooled_notify_auth_change()` + triggers on `api_keys` (any update that is not the periodic
  `last_used` touch, and deletes) and `organizations` (soft delete to plan 'deleted', hard
  delete; plan and limit changes need no notification: `spooled_check_key` sees them): `NOTIFY spooled_auth_revoked, 'k:<key id>' | 'o:<org id>'`, delivered at commit to
  every replica's listener, which drops the cached key rows (auth/service.py `KeyRowCache`).
  Identical notifications of one transaction are folded by PostgreSQL (one per key).
* `spooled_key_fingerprint(api_keys, organizations)` (md5 of what authentication derives from
  a key: org, bcrypt hash, queue scope, key rate limit, plan tier, custom limits) and
  `spooled_check_key(key_id, fingerprint)`: the fast lane authenticates from the cached key row
  and calls the check in the same round trip as `BEGIN` and the tenant binding; it raises
  SQLSTATE `SPK01` when the key was revoked, expired, its organization deleted, or any of those
  fields changed, and the request is authenticated again from the database. So a revoked key is
  refused on the very next request on every replica (window 0) at the cost of one primary-key
  lookup inside a round trip that happens anyway. SECURITY DEFINER: it runs after `SET ROLE
  spooled_tenant` and must read the key whatever RLS shows.
* Claim wake-ups (`wait_ms`, jobs/wakeup.py): `NOTIFY spooled_jobs_ready,
  '<org>\t<queue>\t<count>\t<due epoch>'` when jobs become claimable: a statement-level
  AFTER INSERT trigger (one notification per statement and queue, however many rows: bulk
  enqueue pays one), a row-level AFTER UPDATE trigger whose WHEN clause only fires on a
  transition *into* pending/scheduled with dependencies met (claim, complete, heartbeat never
  call it), and queue resume. Jobs due later carry their earliest `scheduled_at` so each
  process arms one timer instead of waiting for the 5 s activation sweep.
* Write amplification of `jobs` (bench/profile_writes.py, WAL bytes and index growth per job):
  - `jobs_tags_idx` was a `jsonb_path_ops` GIN index, which cannot serve the only tag query
    (`tags ? $tag`, jobs/listing.py) and stored an entry for every job, tags or not: the
    largest index growth per job (115 B). Now a default-opclass GIN (supports `?`) over jobs
    that have tags only.
  - `jobs_lease_expiry_idx (lease_expires_at) WHERE status = 'processing'` made every heartbeat
    a non-HOT update (it changes only `lease_expires_at` and `updated_at`). The lease sweep and
    the offline-worker release scan the processing jobs through `jobs_worker_processing_idx`
    (same predicate; the in-flight set is small), so heartbeats become HOT updates.
  - `fillfactor = 90` leaves room on each page for those HOT versions.
  - `job_history_organization_id_fkey` is dropped: each history row (3 per job) paid an FK
    check that takes `FOR KEY SHARE` on the organization's row, the same row for every job of
    the tenant (multixacts under concurrency; 45 µs per row in the claim's EXPLAIN ANALYZE
    against 6 µs for the job FK). Integrity is kept by `job_id → jobs ON DELETE CASCADE` and
    `jobs.organization_id → organizations ON DELETE CASCADE`.
  Status changes (claim, complete) cannot be HOT while any index mentions `status` (the claim
  index's predicate must), so for them the aim is fewer index entries, not HOT.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = [
    """
    CREATE OR REPLACE FUNCTION spooled_notify_auth_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'api_keys' THEN
            PERFORM pg_notify('spooled_auth_revoked', 'k:' || OLD.id);
        ELSE
            PERFORM pg_notify('spooled_auth_revoked', 'o:' || OLD.id);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER api_keys_auth_change AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.last_used IS NOT DISTINCT FROM NEW.last_used)
    EXECUTE FUNCTION spooled_notify_auth_change()
    """,
    """
    CREATE TRIGGER api_keys_auth_delete AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION spooled_notify_auth_change()
    """,
    """
    CREATE TRIGGER organizations_auth_change AFTER UPDATE OF plan_tier ON organizations
    FOR EACH ROW WHEN (NEW.plan_tier = 'deleted' AND OLD.plan_tier IS DISTINCT FROM 'deleted')
    EXECUTE FUNCTION spooled_notify_auth_change()
    """,
    """
    CREATE TRIGGER organizations_auth_delete AFTER DELETE ON organizations FOR EACH ROW
    EXECUTE FUNCTION spooled_notify_auth_change()
    """,
]

STATEMENTS += [
    """
    CREATE OR REPLACE FUNCTION spooled_key_fingerprint(k api_keys, o organizations) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT md5(concat_ws('|', k.organization_id, k.key_hash, k.queues::text,
                             coalesce(k.rate_limit::text, ''), o.plan_tier,
                             coalesce(o.custom_limits::text, '')))
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION spooled_check_key(p_key_id text, p_fingerprint text) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM api_keys k JOIN organizations o ON o.id = k.organization_id
            WHERE k.id = p_key_id AND k.is_active
              AND (k.expires_at IS NULL OR k.expires_at > now())
              AND o.plan_tier <> 'deleted'
              AND spooled_key_fingerprint(k, o) = p_fingerprint
        ) THEN
            RAISE EXCEPTION 'cached API key is no longer current' USING ERRCODE = 'SPK01';
        END IF;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION spooled_notify_jobs_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE r record;
    BEGIN
        FOR r IN
            SELECT organization_id, queue_name,
                   count(*) FILTER (WHERE scheduled_at IS NULL OR scheduled_at <= now()) AS n,
                   min(scheduled_at) FILTER (WHERE scheduled_at > now()) AS due
            FROM spooled_new_jobs
            WHERE status IN ('pending', 'scheduled') AND dependencies_met
            GROUP BY organization_id, queue_name
        LOOP
            IF r.n > 0 THEN
                PERFORM pg_notify('spooled_jobs_ready',
                                  r.organization_id || E'\t' || r.queue_name || E'\t' || r.n);
            END IF;
            IF r.due IS NOT NULL THEN
                PERFORM pg_notify('spooled_jobs_ready',
                                  r.organization_id || E'\t' || r.queue_name || E'\t0\t'
                                  || extract(epoch FROM r.due));
            END IF;
        END LOOP;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER jobs_ready_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS spooled_new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_notify_jobs_inserted()
    """,
    """
    CREATE OR REPLACE FUNCTION spooled_notify_job_ready() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.scheduled_at IS NOT NULL AND NEW.scheduled_at > now() THEN
            PERFORM pg_notify('spooled_jobs_ready',
                              NEW.organization_id || E'\t' || NEW.queue_name || E'\t0\t'
                              || extract(epoch FROM NEW.scheduled_at));
        ELSE
            PERFORM pg_notify('spooled_jobs_ready',
                              NEW.organization_id || E'\t' || NEW.queue_name || E'\t1');
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER jobs_ready_update AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (NEW.status IN ('pending', 'scheduled') AND NEW.dependencies_met
          AND (OLD.status NOT IN ('pending', 'scheduled') OR NOT OLD.dependencies_met
               OR OLD.scheduled_at IS DISTINCT FROM NEW.scheduled_at))
    EXECUTE FUNCTION spooled_notify_job_ready()
    """,
    """
    CREATE OR REPLACE FUNCTION spooled_notify_queue_resumed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('spooled_jobs_ready',
                          NEW.organization_id || E'\t' || NEW.queue_name || E'\t100');
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER queue_config_resumed AFTER UPDATE OF enabled ON queue_config FOR EACH ROW
    WHEN (NEW.enabled AND NOT OLD.enabled)
    EXECUTE FUNCTION spooled_notify_queue_resumed()
    """,
]

STATEMENTS += [
    "DROP INDEX IF EXISTS jobs_tags_idx",
    "CREATE INDEX jobs_tags_idx ON jobs USING gin (tags) WHERE tags IS NOT NULL",
    "DROP INDEX IF EXISTS jobs_lease_expiry_idx",
    "ALTER TABLE jobs SET (fillfactor = 90)",
    "ALTER TABLE job_history DROP CONSTRAINT IF EXISTS job_history_organization_id_fkey",
]

DOWNGRADE: list[str] = [
    "ALTER TABLE job_history ADD CONSTRAINT job_history_organization_id_fkey FOREIGN KEY "
    "(organization_id) REFERENCES organizations(id) ON DELETE CASCADE",
    "ALTER TABLE jobs RESET (fillfactor)",
    "CREATE INDEX IF NOT EXISTS jobs_lease_expiry_idx ON jobs (lease_expires_at) "
    "WHERE status = 'processing'",
    "DROP INDEX IF EXISTS jobs_tags_idx",
    "CREATE INDEX jobs_tags_idx ON jobs USING gin (tags jsonb_path_ops)",
    "DROP FUNCTION IF EXISTS spooled_check_key(text, text)",
    "DROP FUNCTION IF EXISTS spooled_key_fingerprint(api_keys, organizations)",
    "DROP TRIGGER IF EXISTS queue_config_resumed ON queue_config",
    "DROP FUNCTION IF EXISTS spooled_notify_queue_resumed()",
    "DROP TRIGGER IF EXISTS jobs_ready_update ON jobs",
    "DROP FUNCTION IF EXISTS spooled_notify_job_ready()",
    "DROP TRIGGER IF EXISTS jobs_ready_insert ON jobs",
    "DROP FUNCTION IF EXISTS spooled_notify_jobs_inserted()",
    "DROP TRIGGER IF EXISTS organizations_auth_delete ON organizations",
    "DROP TRIGGER IF EXISTS organizations_auth_change ON organizations",
    "DROP TRIGGER IF EXISTS api_keys_auth_delete ON api_keys",
    "DROP TRIGGER IF EXISTS api_keys_auth_change ON api_keys",
    "DROP FUNCTION IF EXISTS spooled_notify_auth_change()",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
