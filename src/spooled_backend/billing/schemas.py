"""Wire models for billing (CONTRACT §7.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from spooled_backend.core.openapi import Out


class PortalRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    return_url: Annotated[str, Field(max_length=2048)]


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class BillingStatus(Out):
    plan_tier: str
    has_stripe_customer: bool
    stripe_subscription_id: str | None = None
    stripe_subscription_status: str | None = None
    stripe_current_period_end: datetime | None = None
    stripe_cancel_at_period_end: bool | None = None


class PortalSession(Out):
    url: str


class WebhookReceived(Out):
    received: bool
    duplicate: bool | None = None
