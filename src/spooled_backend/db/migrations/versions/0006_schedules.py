"""Cron schedules (issue 10): one run row per due time, enforced by the database.

* `schedule_runs.scheduled_for`: the due time (`next_run_at`) a cron fire was for; NULL for a
  manual trigger (`POST /schedules/{id}/trigger`).
* `schedule_runs_once_idx`: UNIQUE (schedule_id, scheduled_for) for cron fires. The firing loop
  already takes the schedule row with `FOR UPDATE SKIP LOCKED` and moves `next_run_at` in the
  same transaction, so no replica fires a due time twice; the index makes a double fire
  impossible even if that rule were broken (the second insert fails, its transaction rolls
  back with its job).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATEMENTS: list[str] = [
    "ALTER TABLE schedule_runs ADD COLUMN scheduled_for TIMESTAMPTZ",
    """
    CREATE UNIQUE INDEX schedule_runs_once_idx ON schedule_runs (schedule_id, scheduled_for)
    WHERE scheduled_for IS NOT NULL
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS schedule_runs_once_idx")
    op.execute("ALTER TABLE schedule_runs DROP COLUMN IF EXISTS scheduled_for")
