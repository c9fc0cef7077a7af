"""Row-level security that never steers a plan (issue 8, third profile).

The `tenant_isolation` policies of 0003 compare `organization_id = current_setting(…)`: an
indexable clause. The planner may then reach a tenant's rows through the RLS qual alone, and
with missing or stale statistics (a table filled seconds before autoanalyze) it did: the claim's
`UPDATE jobs … WHERE id = ANY (ARRAY(SELECT id FROM picked))` was planned as a bitmap scan of
`jobs_org_status_created_idx` by the policy's organization, reading every job of the tenant for
each claim (5,000 rows and ~270 buffers for one claimed job, auto_explain; bench workload (d)
saturated at ~450 claims/s). The policy's default estimate (0.5 % of the table) looked cheaper
than the ten primary-key probes assumed for an array of unknown length.

The policies now test `(organization_id = current_setting(…)) IS TRUE`: the same rows pass
(NULL and false both hide a row or fail the check) but the clause is not an index condition,
so it is only ever a filter. Plans are driven by each statement's own `organization_id = $n`
filter, which every tenant query has (STYLE: RLS is the second lock, not the first). Tables
added later get the same form through `spooled_enable_tenant_rls`.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ENABLE = """
CREATE OR REPLACE FUNCTION spooled_enable_tenant_rls(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('ALTER TABLE %%s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %%s', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %%s FOR ALL TO PUBLIC '
        'USING (%(qual)s) WITH CHECK (%(qual)s)',
        tbl);
END
$fn$
"""

_FILTER_ONLY = "(organization_id = current_setting(''app.current_org_id'', true)) IS TRUE"
_INDEXABLE = "organization_id = current_setting(''app.current_org_id'', true)"

# Re-create the policy on every table that has one.
_REAPPLY = """
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT schemaname, tablename FROM pg_policies
        WHERE schemaname = current_schema() AND policyname = 'tenant_isolation'
        ORDER BY tablename
    LOOP
        PERFORM spooled_enable_tenant_rls(format('%I.%I', t.schemaname, t.tablename)::regclass);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute(_ENABLE % {"qual": _FILTER_ONLY})
    op.execute(_REAPPLY)


def downgrade() -> None:
    op.execute(_ENABLE % {"qual": _INDEXABLE})
    op.execute(_REAPPLY)
