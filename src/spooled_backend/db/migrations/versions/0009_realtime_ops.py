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

STATEMENTS: list[str] = [
    # ops (issue 12): the W3C trace context of the request that enqueued a job, written only when
    # tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT), so the claim and the acknowledgement of the
    # job continue the enqueue's trace. Nullable, no default: adding it rewrites nothing.
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS traceparent TEXT",
]
DOWNGRADE: list[str] = [
    "ALTER TABLE jobs DROP COLUMN IF EXISTS traceparent",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
