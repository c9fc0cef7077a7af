"""Wire models for the admin API (CONTRACT §7.14, sdk-wire-notes §4.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from spooled_backend.core.openapi import Out
from spooled_backend.organizations.schemas import Organization, UsageInfo

Text200 = Annotated[str, Field(max_length=200)]


class AdminCreateOrganization(BaseModel):
    """`POST /admin/organizations`; PY always sends `plan_tier` (default "free")."""

    model_config = ConfigDict(extra="ignore")

    name: Text200
    slug: Text200
    plan_tier: str | None = None
    billing_email: EmailStr | None = None
    settings: Any = None
    custom_limits: Any = None


class AdminUpdateOrganization(BaseModel):
    """`PATCH /admin/organizations/{id}`: only keys present are applied (three-state)."""

    model_config = ConfigDict(extra="ignore")

    name: Text200 | None = None
    plan_tier: str | None = None
    billing_email: EmailStr | None = None
    settings: Any = None
    custom_limits: Any = None
    stripe_customer_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    stripe_subscription_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class AdminOrgUsage(Out):
    jobs_today: int
    active_jobs: int
    queues: int
    workers: int
    api_keys: int


class AdminOrgListItem(Out):
    id: str
    name: str
    slug: str
    plan_tier: str
    billing_email: str | None = None
    created_at: datetime
    updated_at: datetime
    usage: AdminOrgUsage


class AdminOrgList(Out):
    organizations: list[AdminOrgListItem]
    total: int
    limit: int
    offset: int


class AdminOrgDetail(Organization):
    usage_info: UsageInfo
    api_keys_count: int
    total_jobs: int


class PlanCount(Out):
    plan: str
    count: int


class OrgStats(Out):
    total: int
    by_plan: list[PlanCount]
    created_today: int
    created_this_week: int


class JobTotals(Out):
    total_active: int
    pending: int
    processing: int
    completed_24h: int
    failed_24h: int


class WorkerTotals(Out):
    total: int
    healthy: int
    degraded: int


class SystemInfo(Out):
    api_version: str
    uptime_seconds: int


class PlatformStats(Out):
    organizations: OrgStats
    jobs: JobTotals
    workers: WorkerTotals
    system: SystemInfo
