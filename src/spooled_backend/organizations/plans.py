"""Plan tiers and their limits (CONTRACT §12.1). `None` means unlimited."""

from __future__ import annotations

from typing import Any

TIERS = ("free", "starter", "pro", "enterprise")

PLAN_LIMITS: dict[str, dict[str, Any]] = {
    "free": {
        "display_name": "Free",
        "max_jobs_per_day": 1_000,
        "max_active_jobs": 10,
        "max_queues": 2,
        "max_workers": 1,
        "max_api_keys": 2,
        "max_schedules": 1,
        "max_workflows": 0,
        "max_webhooks": 1,
        "max_payload_size_bytes": 65_536,
        "rate_limit_requests_per_second": 5,
        "rate_limit_burst": 10,
        "job_retention_days": 3,
        "history_retention_days": 1,
    },
    "starter": {
        "display_name": "Starter",
        "max_jobs_per_day": 10_000,
        "max_active_jobs": 500,
        "max_queues": 10,
        "max_workers": 5,
        "max_api_keys": 5,
        "max_schedules": 10,
        "max_workflows": 5,
        "max_webhooks": 5,
        "max_payload_size_bytes": 262_144,
        "rate_limit_requests_per_second": 25,
        "rate_limit_burst": 50,
        "job_retention_days": 14,
        "history_retention_days": 7,
    },
    "pro": {
        "display_name": "Pro",
        "max_jobs_per_day": 100_000,
        "max_active_jobs": 5_000,
        "max_queues": 50,
        "max_workers": 25,
        "max_api_keys": 25,
        "max_schedules": 50,
        "max_workflows": 25,
        "max_webhooks": 20,
        "max_payload_size_bytes": 1_048_576,
        "rate_limit_requests_per_second": 100,
        "rate_limit_burst": 200,
        "job_retention_days": 30,
        "history_retention_days": 30,
    },
    "enterprise": {
        "display_name": "Enterprise",
        "max_jobs_per_day": None,
        "max_active_jobs": None,
        "max_queues": None,
        "max_workers": None,
        "max_api_keys": None,
        "max_schedules": None,
        "max_workflows": None,
        "max_webhooks": None,
        "max_payload_size_bytes": 1_048_576,
        "rate_limit_requests_per_second": 500,
        "rate_limit_burst": 1_000,
        "job_retention_days": 90,
        "history_retention_days": 90,
    },
}

# Limits that PLAN_LIMITS_ENABLED=false switches off (D4); payload size and retention stay.
QUOTA_KEYS = (
    "max_jobs_per_day",
    "max_active_jobs",
    "max_queues",
    "max_workers",
    "max_api_keys",
    "max_schedules",
    "max_workflows",
    "max_webhooks",
    "rate_limit_requests_per_second",
    "rate_limit_burst",
)


def upgrade_tier(tier: str) -> str | None:
    """free→starter→pro→enterprise; None for enterprise."""
    if tier not in TIERS:
        return "starter"
    index = TIERS.index(tier)
    return TIERS[index + 1] if index + 1 < len(TIERS) else None


def limits_for(
    tier: str, custom_limits: dict[str, Any] | None = None, enabled: bool = True
) -> dict[str, Any]:
    """Serialised PlanLimits `{tier, display_name, max_…}`; unknown tiers fall back to free;
    `custom_limits` override numeric keys by name; `enabled=False` nulls the quotas (D4)."""
    base_tier = tier if tier in PLAN_LIMITS else "free"
    limits: dict[str, Any] = {"tier": base_tier, **PLAN_LIMITS[base_tier]}
    for key, value in (custom_limits or {}).items():
        if (
            key in limits
            and key not in ("tier", "display_name")
            and (value is None or (isinstance(value, int) and not isinstance(value, bool)))
        ):
            limits[key] = value
    if not enabled:
        for key in QUOTA_KEYS:
            limits[key] = None
    return limits
