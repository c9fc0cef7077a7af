"""The UsageInfo document (CONTRACT §12.3) and the admin list's usage summary (§7.14)."""

from __future__ import annotations

from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.organizations import quotas


def _entry(current: int, limit: int | None) -> dict[str, Any]:
    percentage = None
    if limit is not None and limit > 0:
        percentage = round(current * 100.0 / limit, 2)
    return {
        "current": current,
        "limit": limit,
        "percentage": percentage,
        "is_disabled": limit == 0,
    }


def warnings_for(tier: str, usage: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """`warning` at ≥ threshold (free 50 %, other plans 80 %), `critical` at ≥ 100 %."""
    threshold = 50.0 if tier == "free" else 80.0
    out: list[dict[str, str]] = []
    for key, entry in usage.items():
        pct = entry["percentage"]
        if pct is None or pct < threshold:
            continue
        resource = quotas.USAGE_KEYS[key]
        label = resource.replace("_", " ")
        cur, lim = entry["current"], entry["limit"]
        if pct >= 100.0:
            out.append(
                {
                    "resource": resource,
                    "message": f"{label} limit reached ({cur}/{lim})",
                    "severity": "critical",
                }
            )
        else:
            out.append(
                {
                    "resource": resource,
                    "message": f"{label} usage is at {pct:.0f}% of the limit ({cur}/{lim})",
                    "severity": "warning",
                }
            )
    return out


async def build_usage(
    conn: asyncpg.Connection, settings: Settings, org: quotas.PlanSubject
) -> dict[str, Any]:
    """`{plan, plan_display_name, limits, usage: {jobs_today, active_jobs, queues, workers,
    api_keys, schedules, workflows, webhooks: {current, limit, percentage, is_disabled}},
    warnings: [{resource, message, severity}]}`. Limits are null when unlimited (or D4)."""
    limits = quotas.effective_limits(settings, org)
    counts = await quotas.resource_counts(conn, settings, org)
    usage = {
        key: _entry(counts[key], limits[quotas.LIMIT_KEYS[resource]])
        for key, resource in quotas.USAGE_KEYS.items()
    }
    return {
        "plan": limits["tier"],
        "plan_display_name": limits["display_name"],
        "limits": limits,
        "usage": usage,
        "warnings": warnings_for(limits["tier"], usage),
    }
