"""Realtime and operations (issues 9, 12): placeholder revision, filled by the work that owns it (or folded away if unused).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = []


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    pass
