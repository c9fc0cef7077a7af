"""Hot path (issue 8): revocation NOTIFY for the in-process API-key cache.

* `spooled_notify_auth_change()` + triggers on `api_keys` (any update that is not the periodic
  `last_used` touch, and deletes) and `organizations` (plan tier / custom limits changes,
  deletes): `NOTIFY spooled_auth_revoked, 'k:<key id>' | 'o:<org id>'`, delivered at commit to
  every replica's listener, which drops the cached key rows (auth/service.py `KeyRowCache`).
  Identical notifications of one transaction are folded by PostgreSQL (one per key).

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
    CREATE TRIGGER organizations_auth_change AFTER UPDATE OF plan_tier, custom_limits
    ON organizations FOR EACH ROW
    WHEN (OLD.plan_tier IS DISTINCT FROM NEW.plan_tier
          OR OLD.custom_limits IS DISTINCT FROM NEW.custom_limits)
    EXECUTE FUNCTION spooled_notify_auth_change()
    """,
    """
    CREATE TRIGGER organizations_auth_delete AFTER DELETE ON organizations FOR EACH ROW
    EXECUTE FUNCTION spooled_notify_auth_change()
    """,
]

DOWNGRADE: list[str] = [
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
