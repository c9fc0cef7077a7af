"""Wire models for organization requests (CONTRACT §7.3)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field


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
