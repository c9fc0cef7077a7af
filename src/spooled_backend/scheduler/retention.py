"""Retention sweep (CONTRACT §15 "Stale workers + retention", every 300 s): per organization,
delete completed/cancelled jobs finished more than the plan's `job_retention_days` ago, and
`job_history`, finished `outgoing_webhook_deliveries` (never `pending`: that is the live
outbox) and inbound `webhook_deliveries` older than `history_retention_days`; plus expired
`email_login_codes` and `processed_stripe_events` older than 30 days.

Days come from the plan (`organizations/plans.py`, `custom_limits` overriding); an organization
whose limit is null (PLAN_LIMITS_ENABLED=false) keeps everything. Each table is deleted in
batches of BATCH rows, at most MAX_ROUNDS per run, so one iteration stays short.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.organizations.plans import limits_for

BATCH = 5000
MAX_ROUNDS = 10
STRIPE_EVENTS_DAYS = 30

ORG_PLANS = "SELECT id, plan_tier, custom_limits FROM organizations"

_POLICY = "policy AS (SELECT * FROM unnest($1::text[], $2::int[]) AS p(organization_id, days))"

DELETE_JOBS = f"""
WITH {_POLICY}, doomed AS (
    SELECT j.id FROM jobs j JOIN policy p ON j.organization_id = p.organization_id
    WHERE j.status IN ('completed', 'cancelled')
      AND COALESCE(j.completed_at, j.updated_at) < now() - make_interval(days => p.days)
    LIMIT $3 FOR UPDATE OF j SKIP LOCKED
)
DELETE FROM jobs j USING doomed d WHERE j.id = d.id
"""


def _by_created(table: str, extra: str = "") -> str:
    return f"""
WITH {_POLICY}, doomed AS (
    SELECT t.ctid FROM {table} t JOIN policy p ON t.organization_id = p.organization_id
    WHERE t.created_at < now() - make_interval(days => p.days) {extra}
    LIMIT $3
)
DELETE FROM {table} t USING doomed d WHERE t.ctid = d.ctid
"""


DELETE_HISTORY = _by_created("job_history")
DELETE_OUTGOING = _by_created("outgoing_webhook_deliveries", "AND t.status <> 'pending'")
DELETE_INBOUND = _by_created("webhook_deliveries")
DELETE_LOGIN_CODES = "DELETE FROM email_login_codes WHERE expires_at < now()"
DELETE_STRIPE_EVENTS = (
    f"DELETE FROM processed_stripe_events WHERE received_at < now() - interval '{STRIPE_EVENTS_DAYS} days'"
)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def _rounds(conn: asyncpg.Connection, sql: str, orgs: list[str], days: list[int]) -> int:
    total = 0
    for _ in range(MAX_ROUNDS):
        n = _count(await conn.execute(sql, orgs, days, BATCH))
        total += n
        if n < BATCH:
            break
    return total


async def sweep_retention(conn: asyncpg.Connection, settings: Settings) -> dict[str, Any]:
    """One retention pass; returns how many rows each table lost."""
    jobs_orgs: list[str] = []
    jobs_days: list[int] = []
    hist_orgs: list[str] = []
    hist_days: list[int] = []
    for row in await conn.fetch(ORG_PLANS):
        limits = limits_for(row["plan_tier"], row["custom_limits"], settings.plan_limits_enabled)
        if limits.get("job_retention_days") is not None:
            jobs_orgs.append(row["id"])
            jobs_days.append(int(limits["job_retention_days"]))
        if limits.get("history_retention_days") is not None:
            hist_orgs.append(row["id"])
            hist_days.append(int(limits["history_retention_days"]))
    return {
        "jobs": await _rounds(conn, DELETE_JOBS, jobs_orgs, jobs_days),
        "job_history": await _rounds(conn, DELETE_HISTORY, hist_orgs, hist_days),
        "outgoing_webhook_deliveries": await _rounds(conn, DELETE_OUTGOING, hist_orgs, hist_days),
        "webhook_deliveries": await _rounds(conn, DELETE_INBOUND, hist_orgs, hist_days),
        "email_login_codes": _count(await conn.execute(DELETE_LOGIN_CODES)),
        "processed_stripe_events": _count(await conn.execute(DELETE_STRIPE_EVENTS)),
    }
