"""Admin SQL (CONTRACT §7.14). Admin routes run as the login role: they see every organization."""

from __future__ import annotations

from spooled_backend.organizations.queries import ORG_COLUMNS

# $1 plan_tier filter (NULL = any), $2 search pattern for ILIKE (NULL = none; already escaped),
# $3 limit, $4 offset. ORDER BY is chosen from a fixed whitelist (see SORT_COLUMNS).
_LIST_WHERE = """
WHERE ($1::text IS NULL OR plan_tier = $1)
  AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR slug ILIKE $2 ESCAPE '\\'
       OR billing_email ILIKE $2 ESCAPE '\\')
"""

SORT_COLUMNS = ("created_at", "name", "slug", "plan_tier", "updated_at")


def list_orgs(sort_by: str, sort_order: str) -> str:
    """The page query for a whitelisted sort column and direction (never user text)."""
    if sort_by not in SORT_COLUMNS or sort_order not in ("asc", "desc"):
        raise ValueError("sort outside the whitelist")
    return f"""
SELECT {ORG_COLUMNS} FROM organizations
{_LIST_WHERE}
ORDER BY {sort_by} {sort_order}, id {sort_order}
LIMIT $3 OFFSET $4
"""


COUNT_ORGS = f"SELECT count(*) FROM organizations {_LIST_WHERE}"

# PATCH: each value is applied only when its flag is true.
UPDATE_ORG = f"""
UPDATE organizations SET
    name = CASE WHEN $2 THEN $3 ELSE name END,
    plan_tier = CASE WHEN $4 THEN $5 ELSE plan_tier END,
    billing_email = CASE WHEN $6 THEN $7 ELSE billing_email END,
    settings = CASE WHEN $8 THEN $9::jsonb ELSE settings END,
    custom_limits = CASE WHEN $10 THEN $11::jsonb ELSE custom_limits END,
    stripe_customer_id = CASE WHEN $12 THEN $13 ELSE stripe_customer_id END,
    stripe_subscription_id = CASE WHEN $14 THEN $15 ELSE stripe_subscription_id END,
    updated_at = now()
WHERE id = $1
RETURNING {ORG_COLUMNS}
"""

HARD_DELETE_ORG = "DELETE FROM organizations WHERE id = $1 RETURNING id"

# `jobs` has a self-reference (parent_job_id) and `job_dependencies`/`schedule_runs` reference
# jobs; deleting the organization cascades through all of them in one statement.

ORG_TOTALS = """
SELECT (SELECT count(*) FROM api_keys WHERE organization_id = $1 AND is_active) AS api_keys_count,
       (SELECT count(*) FROM jobs WHERE organization_id = $1) AS total_jobs
"""

STATS_ORGS = """
SELECT plan_tier, count(*) AS n,
       count(*) FILTER (WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'utc')
                                           AT TIME ZONE 'utc') AS today,
       count(*) FILTER (WHERE created_at >= now() - interval '7 days') AS week
FROM organizations GROUP BY plan_tier ORDER BY plan_tier
"""

STATS_JOBS = """
SELECT
    count(*) FILTER (WHERE status IN ('pending', 'scheduled', 'processing')) AS total_active,
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'processing') AS processing,
    count(*) FILTER (WHERE status = 'completed' AND completed_at >= now() - interval '24 hours')
        AS completed_24h,
    count(*) FILTER (WHERE status IN ('failed', 'deadletter')
                     AND updated_at >= now() - interval '24 hours') AS failed_24h
FROM jobs
"""

STATS_WORKERS = """
SELECT count(*) FILTER (WHERE status <> 'offline') AS total,
       count(*) FILTER (WHERE status = 'healthy') AS healthy,
       count(*) FILTER (WHERE status = 'degraded') AS degraded
FROM workers
"""
