"""Activation of a due scheduled job wakes waiting claimers (newcomer's trial).

`jobs_ready_update` (0008) notified `spooled_jobs_ready` on transitions *into* the claimable
statuses, but not on `scheduled` → `pending`: a due scheduled job is claimable either way,
and the waiting claimer's timer fires at `scheduled_at`. When that timer's claim ran while
the activation sweep held the row (`FOR UPDATE SKIP LOCKED` skipped it), nothing woke the
claimer again before its `wait_ms` ran out. The sweep's activation now notifies too (one
notification per queue and transaction: PostgreSQL folds identical payloads).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TRIGGER = """
CREATE TRIGGER jobs_ready_update AFTER UPDATE ON jobs FOR EACH ROW
WHEN (NEW.status IN ('pending', 'scheduled') AND NEW.dependencies_met
      AND (OLD.status NOT IN ('pending', 'scheduled') OR NOT OLD.dependencies_met
           OR OLD.scheduled_at IS DISTINCT FROM NEW.scheduled_at{activation}))
EXECUTE FUNCTION spooled_notify_job_ready()
"""
_ACTIVATION = "\n           OR (OLD.status = 'scheduled' AND NEW.status = 'pending')"


def upgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_ready_update ON jobs")
    op.execute(_TRIGGER.format(activation=_ACTIVATION))


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_ready_update ON jobs")
    op.execute(_TRIGGER.format(activation=""))
