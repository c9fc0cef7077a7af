"""Outgoing/incoming webhooks and the outbox (issue 11): placeholder revision, filled by the work that owns it (or folded away if unused).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = []


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    pass
