"""Wire models for webhooks (CONTRACT §7.12, §7.13): request bodies, and the response models
that document the routes in our OpenAPI (responses are written as plain dicts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from spooled_backend.core.openapi import Out
from spooled_backend.core.validators import StrictBool, StrictInt
from spooled_backend.webhooks.rules import EVENTS, FORMATS

HookName = Annotated[str, Field(min_length=1, max_length=255)]
HookUrl = Annotated[str, Field(min_length=1, max_length=2048)]
Secret = Annotated[str, Field(max_length=255)]


def check_events(value: list[str]) -> list[str]:
    """Non-empty subset of CONTRACT §10.1; duplicates collapse (order kept)."""
    if not value:
        raise ValueError("events must list at least one event")
    unknown = [e for e in value if e not in EVENTS]
    if unknown:
        raise ValueError(
            f"unknown event type(s): {', '.join(unknown)}; valid types are: {', '.join(EVENTS)}"
        )
    return list(dict.fromkeys(value))


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise ValueError(f"format must be one of: {', '.join(FORMATS)}")
    return value


Events = Annotated[list[str], AfterValidator(check_events)]
Format = Annotated[str, AfterValidator(check_format)]


class CreateOutgoingWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: HookName
    url: HookUrl
    events: Events
    secret: Secret | None = None
    enabled: StrictBool = True
    format: Format | None = None


class UpdateOutgoingWebhook(BaseModel):
    """`secret` is three-state: omitted = keep, null = clear, string = replace."""

    model_config = ConfigDict(extra="ignore")

    name: HookName | None = None
    url: HookUrl | None = None
    events: Events | None = None
    secret: Secret | None = None
    enabled: StrictBool | None = None
    format: Format | None = None


class CustomIngest(BaseModel):
    """`POST /webhooks/{org_id}/custom` body (CONTRACT §7.13)."""

    model_config = ConfigDict(extra="ignore")

    queue_name: Annotated[str, Field(min_length=1, max_length=255)]
    event_type: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    payload: Any = Field(...)
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    priority: Annotated[StrictInt, Field(ge=-100, le=100)] | None = None


class IngestSecret(BaseModel):
    model_config = ConfigDict(extra="ignore")

    secret: Annotated[str, Field(min_length=8, max_length=255)]


# ---- response models (OpenAPI) ------------------------------------------------------------


class OutgoingWebhookOut(Out):
    id: str
    organization_id: str
    name: str
    url: str
    events: list[str]
    format: Literal["json", "slack", "discord", "teams"] = "json"
    enabled: bool
    failure_count: int
    last_triggered_at: datetime | None = None
    last_status: Literal["success", "failed", "auto_disabled"] | None = None
    created_at: datetime
    updated_at: datetime


class DeliveryOut(Out):
    id: str
    webhook_id: str
    event: str
    payload: Any = Field(description="The full envelope `{id, event, created_at, data}`")
    status: Literal["pending", "success", "failed"]
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    attempts: int
    created_at: datetime
    delivered_at: datetime | None = None


class WebhookTestOut(Out):
    success: bool
    status_code: int | None = None
    response_time_ms: int
    error: str | None = None


class DeliveryRetryOut(Out):
    success: bool
    message: str


class IngestOut(Out):
    job_id: str
    queue_name: str
    status: str
    created: bool = Field(description="False when the provider delivery / idempotency key "
                                      "matched an existing job")


class InboundDeliveryOut(Out):
    id: str
    provider: Literal["custom", "github", "stripe"]
    event_type: str
    matched_queue: str | None = None
    job_id: str | None = None
    status: Literal["created", "duplicate", "rejected"] | None = None
    error: str | None = Field(default=None, description="Why a rejected attempt was refused")
    created_at: datetime


class IngestSecretOut(Out):
    provider: Literal["github", "stripe"]
    configured: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None
