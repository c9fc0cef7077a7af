"""Wire models for organization requests (CONTRACT §7.3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from spooled_backend.core.openapi import Out


class CreateOrganization(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    slug: Annotated[str, Field(min_length=1, max_length=200)]
    billing_email: EmailStr | None = None


class UpdateOrganization(BaseModel):
    """PUT /organizations/{id}: only the keys present are applied."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(max_length=200)] | None = None
    billing_email: EmailStr | None = None
    settings: Any = None  # must be an object: checked by the service (400, not 422)


class GenerateSlug(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class ClearWebhookToken(BaseModel):
    model_config = ConfigDict(extra="ignore")

    confirm: bool | None = None


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class Organization(Out):
    id: str
    name: str
    slug: str
    plan_tier: str
    billing_email: str | None = None
    settings: dict[str, Any]
    custom_limits: dict[str, Any] | None = None
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None
    stripe_subscription_status: str | None = None
    stripe_current_period_end: datetime | None = None
    stripe_cancel_at_period_end: bool | None = None
    created_at: datetime
    updated_at: datetime


class OrganizationSummary(Out):
    id: str
    name: str
    slug: str
    plan_tier: str
    created_at: datetime


class NewApiKeyRef(Out):
    id: str
    key: str = Field(description="the raw key, shown only once")
    name: str
    created_at: datetime


class OrganizationCreated(Out):
    organization: Organization
    api_key: NewApiKeyRef


class PlanLimits(Out):
    tier: str
    display_name: str
    max_jobs_per_day: int | None
    max_active_jobs: int | None
    max_queues: int | None
    max_workers: int | None
    max_api_keys: int | None
    max_schedules: int | None
    max_workflows: int | None
    max_webhooks: int | None
    max_payload_size_bytes: int | None
    rate_limit_requests_per_second: int | None
    rate_limit_burst: int | None
    job_retention_days: int | None
    history_retention_days: int | None


class UsageEntry(Out):
    current: int
    limit: int | None
    percentage: float | None
    is_disabled: bool


class UsageWarning(Out):
    resource: str
    message: str
    severity: Literal["warning", "critical"]


class UsageInfo(Out):
    plan: str
    plan_display_name: str
    limits: PlanLimits
    usage: dict[str, UsageEntry]
    warnings: list[UsageWarning]


class SlugCheck(Out):
    available: bool
    valid: bool
    error: str | None = None
    suggestion: str | None = None


class GeneratedSlug(Out):
    slug: str


class WebhookToken(Out):
    webhook_token: str | None
    token: str | None = Field(description="same value as webhook_token (Node SDK)")
    webhook_url: str


class Member(Out):
    id: str
    user_id: str
    email: str | None
    name: str
    role: Literal["owner", "member"]
    joined_at: datetime
    invited_by: str | None = None
