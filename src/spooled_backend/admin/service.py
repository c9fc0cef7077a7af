"""Platform administration (CONTRACT §7.14): organizations across tenants, keys, usage, stats.

Callers have already passed the `X-Admin-Key` check (auth/admin.py). Admin actions are not
charged to plan quotas: the operator is the one who sets them.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from spooled_backend.admin import queries as q
from spooled_backend.admin.schemas import AdminCreateOrganization, AdminUpdateOrganization
from spooled_backend.api_keys import service as api_keys
from spooled_backend.api_keys.schemas import AdminCreateApiKey
from spooled_backend.config import Settings
from spooled_backend.core.errors import NotFound, ValidationFailed
from spooled_backend.core.pagination import Page
from spooled_backend.organizations import lifecycle, quotas
from spooled_backend.organizations import queries as org_q
from spooled_backend.organizations import service as orgs
from spooled_backend.organizations.plans import PLAN_LIMITS, TIERS, limits_for
from spooled_backend.organizations.usage import build_usage

LIMIT_NAMES = frozenset(k for k in PLAN_LIMITS["free"] if k != "display_name")
LIST_USAGE = ("active_jobs", "queues", "workers", "api_keys")
MAX_LIMIT = 10**12  # keeps every limit inside PostgreSQL bigint arithmetic


def check_tier(value: Any) -> str:
    """One of free/starter/pro/enterprise (400 otherwise)."""
    if value not in TIERS:
        raise ValidationFailed("plan_tier", "plan_tier must be one of " + ", ".join(TIERS), "enum")
    return str(value)


def check_custom_limits(value: Any) -> dict[str, int | None] | None:
    """`{<PlanLimits numeric key>: int ≥ 0 | null}`; `null` or `{}` → None (plan defaults)."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(
            "custom_limits", "custom_limits must be a JSON object", "invalid_type"
        )
    for key, limit in value.items():
        if key not in LIMIT_NAMES:
            raise ValidationFailed(
                "custom_limits",
                f"unknown limit '{key}'; valid: {', '.join(sorted(LIMIT_NAMES))}",
                "unknown_field",
            )
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT
        ):
            raise ValidationFailed(
                "custom_limits", f"{key} must be an integer 0..{MAX_LIMIT} or null", "range"
            )
    return dict(value)


async def _org(conn: asyncpg.Connection, org_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(org_q.GET_ORG, org_id)
    if row is None:
        raise NotFound("Organization not found")
    return row


def _plan(row: asyncpg.Record) -> quotas.OrgPlan:
    return quotas.OrgPlan(row["id"], row["plan_tier"], row["custom_limits"])


async def list_organizations(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    plan_tier: str | None,
    search: str | None,
    sort_by: str,
    sort_order: str,
    page: Page,
) -> dict[str, Any]:
    """`{organizations: [{id, name, slug, plan_tier, billing_email, settings, created_at,
    updated_at, usage: {jobs_today, active_jobs, queues, workers, api_keys}}], total, limit,
    offset}`. `search` matches name, slug or billing email (case-insensitive substring)."""
    pattern = None
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    rows = await conn.fetch(
        q.list_orgs(sort_by, sort_order), plan_tier, pattern, page.limit, page.offset
    )
    total = await conn.fetchval(q.COUNT_ORGS, plan_tier, pattern)
    items = []
    for row in rows:
        plan = _plan(row)
        usage = {"jobs_today": await quotas.jobs_today(conn, settings, plan)}
        for key in LIST_USAGE:
            usage[key] = await quotas.count(conn, row["id"], key)
        item = {
            k: row[k]
            for k in (
                "id",
                "name",
                "slug",
                "plan_tier",
                "billing_email",
                "created_at",
                "updated_at",
            )
        }
        item["settings"] = lifecycle.org_view(row)["settings"]
        item["usage"] = usage
        items.append(item)
    return {"organizations": items, "total": int(total), "limit": page.limit, "offset": page.offset}


async def create_organization(
    conn: asyncpg.Connection, settings: Settings, body: AdminCreateOrganization
) -> dict[str, Any]:
    """201 `{organization, api_key: {id, key, name, created_at}}` (key queues `["*"]`), one
    transaction. 400 bad fields, 409 slug/billing email taken. Not subject to REGISTRATION_MODE."""
    tier = check_tier(body.plan_tier) if body.plan_tier is not None else "free"
    custom = check_custom_limits(body.custom_limits)
    org_settings = (
        lifecycle.replace_settings({}, body.settings) if body.settings is not None else {}
    )
    return await orgs.create_organization(
        conn,
        settings,
        name=body.name,
        slug=body.slug,
        billing_email=body.billing_email,
        plan_tier=tier,
        settings_json=org_settings,
        custom_limits=custom,
    )


async def get_organization(
    conn: asyncpg.Connection, settings: Settings, org_id: str
) -> dict[str, Any]:
    """Organization plus `usage_info` (UsageInfo, §12.3), `api_keys_count`, `total_jobs`."""
    row = await _org(conn, org_id)
    out = lifecycle.org_view(row)
    out["usage_info"] = await build_usage(conn, settings, _plan(row))
    totals = await conn.fetchrow(q.ORG_TOTALS, org_id)
    out["api_keys_count"] = int(totals["api_keys_count"])
    out["total_jobs"] = int(totals["total_jobs"])
    return out


async def update_organization(
    conn: asyncpg.Connection, org_id: str, body: AdminUpdateOrganization
) -> dict[str, Any]:
    """PATCH: `name`, `plan_tier`, `billing_email` (null clears; unique among live orgs → 409),
    `settings` (token kept), `custom_limits` (omitted keep; null or {} → plan defaults),
    `stripe_customer_id`/`stripe_subscription_id` (null clears). Returns the re-read Organization.
    A live `plan_tier` on a deleted organization restores it (its keys stay revoked)."""
    fields = body.model_fields_set
    name = lifecycle.validated_name(fields, body.name)
    if "plan_tier" in fields:
        check_tier(body.plan_tier)
    custom = check_custom_limits(body.custom_limits) if "custom_limits" in fields else None
    async with conn.transaction():
        current = await conn.fetchrow(org_q.LOCK_ORG, org_id)
        if current is None:
            raise NotFound("Organization not found")
        if not fields:
            return lifecycle.org_view(current)  # nothing to change: updated_at stays
        new_settings = None
        if "settings" in fields:
            new_settings = lifecycle.replace_settings(current["settings"], body.settings)
        row = await lifecycle.write_org_update(
            conn,
            org_id,
            body.billing_email,
            q.UPDATE_ORG,
            "name" in fields,
            name,
            "plan_tier" in fields,
            body.plan_tier,
            "billing_email" in fields,
            body.billing_email,
            new_settings is not None,
            new_settings,
            "custom_limits" in fields,
            custom,
            "stripe_customer_id" in fields,
            body.stripe_customer_id,
            "stripe_subscription_id" in fields,
            body.stripe_subscription_id,
        )
    return lifecycle.org_view(row)


async def delete_organization(conn: asyncpg.Connection, org_id: str, *, hard: bool) -> None:
    """Soft: `plan_tier = 'deleted'` and all keys deactivated (idempotent). Hard: the row and
    all its data (cascade) in one transaction. NotFound for unknown ids."""
    async with conn.transaction():
        if hard:
            if await conn.fetchval(q.HARD_DELETE_ORG, org_id) is None:
                raise NotFound("Organization not found")
            return
        if await conn.fetchrow(org_q.LOCK_ORG, org_id) is None:
            raise NotFound("Organization not found")
        await conn.execute(org_q.SOFT_DELETE_ORG, org_id)
        await api_keys.deactivate_org_keys(conn, org_id)


async def create_api_key(
    conn: asyncpg.Connection, settings: Settings, org_id: str, body: AdminCreateApiKey
) -> dict[str, Any]:
    """201 `{id, key, name, created_at, expires_at, queues}`; queues default `["*"]`.
    Deleted or unknown organizations → 404. Not charged to the `api_keys` cap."""
    row = await conn.fetchrow(org_q.GET_LIVE_ORG, org_id)
    if row is None:
        raise NotFound("Organization not found")
    return await api_keys.create_key(
        conn, settings, _plan(row), body, default_queues=["*"], charge_quota=False
    )


async def reset_usage(conn: asyncpg.Connection, org_id: str) -> None:
    """`jobs_created_today = 0`, `last_daily_reset = today` (UTC). NotFound for unknown ids."""
    await _org(conn, org_id)
    await quotas.reset_daily_usage(conn, org_id)


async def platform_stats(
    conn: asyncpg.Connection, version: str, uptime_seconds: int
) -> dict[str, Any]:
    """`{organizations: {total, by_plan: [{plan, count}], created_today, created_this_week},
    jobs: {total_active, pending, processing, completed_24h, failed_24h},
    workers: {total (not offline), healthy, degraded}, system: {api_version, uptime_seconds}}`.
    Organization counts include soft-deleted ones (listed under plan `deleted`)."""
    org_rows = await conn.fetch(q.STATS_ORGS)
    jobs = await conn.fetchrow(q.STATS_JOBS)
    workers = await conn.fetchrow(q.STATS_WORKERS)
    return {
        "organizations": {
            "total": sum(int(r["n"]) for r in org_rows),
            "by_plan": [{"plan": r["plan_tier"], "count": int(r["n"])} for r in org_rows],
            "created_today": sum(int(r["today"]) for r in org_rows),
            "created_this_week": sum(int(r["week"]) for r in org_rows),
        },
        "jobs": {k: int(v) for k, v in dict(jobs).items()},
        "workers": {k: int(v) for k, v in dict(workers).items()},
        "system": {"api_version": version, "uptime_seconds": uptime_seconds},
    }


def plans(settings: Settings) -> list[dict[str, Any]]:
    """PlanLimits of the four tiers as enforced here (null limits under PLAN_LIMITS_ENABLED=false)."""
    return [limits_for(tier, None, settings.plan_limits_enabled) for tier in TIERS]
