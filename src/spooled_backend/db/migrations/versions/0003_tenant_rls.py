"""Tenant isolation with row-level security (CONTRACT §18 last paragraph), email-guess ledger.

* Role `spooled_tenant` (NOLOGIN, NOBYPASSRLS): created when the migrating role may (superuser or
  CREATEROLE), then granted to the migrating role so the service can `SET LOCAL ROLE` to it.
  A DBA can create it beforehand instead (`CREATE ROLE spooled_tenant NOLOGIN;
  GRANT spooled_tenant TO <app role>;`); when neither is possible the migration only warns and
  the service runs with application-level isolation (it logs that at start).
* Policy `tenant_isolation` on every table with an `organization_id` column:
  `organization_id = current_setting('app.current_org_id', true)` for reads and writes. Table
  owners (the login role: migrations, key lookup, admin, loops) bypass RLS; the tenant role does
  not. Later migrations enable it on new tables with `SELECT spooled_enable_tenant_rls('t')`.
* `email_login_guesses`: failed email-code guesses, for the 5 per address per 10 min rule.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spooled_tenant') THEN
        BEGIN
            CREATE ROLE spooled_tenant NOLOGIN NOINHERIT NOBYPASSRLS;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'spooled: cannot create role spooled_tenant (needs CREATEROLE); '
                              'row-level security is not enforced until it exists';
        END;
    END IF;
END $$
"""

GRANT_MEMBERSHIP = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spooled_tenant') THEN
        IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            IF NOT pg_has_role(current_user, 'spooled_tenant', 'MEMBER') THEN
                BEGIN
                    EXECUTE format('GRANT spooled_tenant TO %I', current_user);
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE WARNING 'spooled: cannot grant spooled_tenant to %', current_user;
                END;
            END IF;
        END IF;
    END IF;
END $$
"""

GRANT_PRIVILEGES = """
DO $$
DECLARE
    s text := current_schema();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spooled_tenant') THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO spooled_tenant', s);
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'spooled: cannot grant USAGE on schema % (PUBLIC usually has it)', s;
    END;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO spooled_tenant', s);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO spooled_tenant', s);
    EXECUTE format('REVOKE ALL ON TABLE %I.alembic_version FROM spooled_tenant', s);
    EXECUTE format('REVOKE ALL ON TABLE %I.email_login_guesses FROM spooled_tenant', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO spooled_tenant', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO spooled_tenant', s);
END $$
"""

ENABLE_FUNCTION = """
CREATE OR REPLACE FUNCTION spooled_enable_tenant_rls(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %s', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s FOR ALL TO PUBLIC '
        'USING (organization_id = current_setting(''app.current_org_id'', true)) '
        'WITH CHECK (organization_id = current_setting(''app.current_org_id'', true))',
        tbl);
END
$fn$
"""

ENABLE_ON_TENANT_TABLES = """
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.table_name
        FROM information_schema.columns c
        JOIN information_schema.tables tb
          ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.table_schema = current_schema() AND c.column_name = 'organization_id'
          AND tb.table_type = 'BASE TABLE'
        ORDER BY c.table_name
    LOOP
        PERFORM spooled_enable_tenant_rls(format('%I.%I', current_schema(), t.table_name)::regclass);
    END LOOP;
END $$
"""

STATEMENTS = [
    """
    CREATE TABLE email_login_guesses (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX email_login_guesses_email_idx ON email_login_guesses (email, created_at)",
    "CREATE INDEX email_login_guesses_created_idx ON email_login_guesses (created_at)",
    CREATE_ROLE,
    GRANT_MEMBERSHIP,
    ENABLE_FUNCTION,
    ENABLE_ON_TENANT_TABLES,
    GRANT_PRIVILEGES,
]

DISABLE_ALL = """
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT schemaname, tablename FROM pg_policies
        WHERE schemaname = current_schema() AND policyname = 'tenant_isolation'
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I.%I', t.schemaname, t.tablename);
        EXECUTE format('ALTER TABLE %I.%I DISABLE ROW LEVEL SECURITY', t.schemaname, t.tablename);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spooled_tenant') THEN
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM spooled_tenant', current_schema());
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM spooled_tenant', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM spooled_tenant', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM spooled_tenant', current_schema());
    END IF;
END $$
"""


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    # The role is cluster-wide (other databases may use it): it is left in place.
    op.execute(DISABLE_ALL)
    op.execute("DROP FUNCTION IF EXISTS spooled_enable_tenant_rls(regclass)")
    op.execute("DROP TABLE IF EXISTS email_login_guesses")
