"""Job dependencies and workflows (issue 10): placeholder revision, filled by the work that owns it (or folded away if unused).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = []


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    pass
