"""Queue rate-limit bucket state and the worker-liveness sweep index.

`queue_config.rate_tokens` / `rate_refilled_at` hold a token bucket per rate-limited queue
(see `spooled_backend.queues.ratelimit`): the claim locks the config row, refills at
`rate_limit` tokens (jobs) per second up to a burst of `rate_limit`, and spends one token per
job handed out. Both columns are NULL for queues without a rate limit and are never exposed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """ALTER TABLE queue_config
           ADD COLUMN rate_tokens DOUBLE PRECISION,
           ADD COLUMN rate_refilled_at TIMESTAMPTZ""",
    # The liveness sweep scans live workers by heartbeat age, across organizations.
    """CREATE INDEX workers_live_heartbeat_idx ON workers (last_heartbeat)
       WHERE status <> 'offline'""",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS workers_live_heartbeat_idx")
    op.execute("ALTER TABLE queue_config DROP COLUMN IF EXISTS rate_refilled_at")
    op.execute("ALTER TABLE queue_config DROP COLUMN IF EXISTS rate_tokens")
