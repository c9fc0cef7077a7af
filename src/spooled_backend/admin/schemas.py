"""Wire models for the admin API (CONTRACT §7.14, sdk-wire-notes §4.4)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

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
