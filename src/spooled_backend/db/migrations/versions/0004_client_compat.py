"""Client compatibility (issue 7): placeholder revision, filled by the work that owns it (or folded away if unused).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = []


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    pass
