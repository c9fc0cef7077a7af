"""Wire models for API key requests (CONTRACT §7.5, §4.1, §7.14 admin key creation)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from spooled_backend.core.openapi import Out
from spooled_backend.core.validators import StrictBool, StrictInt, UtcDatetime

KEY_NAME_RE = re.compile(r"^[A-Za-z0-9 _.()\-]{1,100}$")
SCOPE_QUEUE_RE = re.compile(r"^[A-Za-z0-9._*\-]{1,255}$")
MAX_SCOPE_QUEUES = 50


def check_key_name(value: str) -> str:
    """1–100 characters of `[A-Za-z0-9 _.()-]`."""
    if not KEY_NAME_RE.match(value) or not value.strip():
        raise ValueError("name must be 1-100 characters of letters, digits, spaces and _.()-")
    return value


def check_scope(value: list[str]) -> list[str]:
    """≤50 names of `[A-Za-z0-9._*-]`, 1–255 each; duplicates collapse (order kept)."""
    if len(value) > MAX_SCOPE_QUEUES:
        raise ValueError(f"at most {MAX_SCOPE_QUEUES} queues may be listed")
    for name in value:
        if not SCOPE_QUEUE_RE.match(name):
            raise ValueError("queue names must be 1-255 characters of [A-Za-z0-9._*-]")
    return list(dict.fromkeys(value))


KeyName = Annotated[str, AfterValidator(check_key_name)]
Scope = Annotated[list[str], AfterValidator(check_scope)]
RateLimit = Annotated[StrictInt, Field(ge=1, le=10_000)]
# RFC 3339 with an offset only (CONTRACT §21 R14), like every other request timestamp.
Expiry = UtcDatetime


class CreateApiKey(BaseModel):
    """`POST /api-keys`; unknown fields (e.g. `permissions`) → 400."""

    model_config = ConfigDict(extra="forbid")

    name: KeyName
    queues: Scope | None = None
    rate_limit: RateLimit | None = None
    expires_at: Expiry | None = None


class AdminCreateApiKey(CreateApiKey):
    """`POST /admin/organizations/{id}/api-keys`; queues default to `["*"]`."""

    model_config = ConfigDict(extra="ignore")


class UpdateApiKey(BaseModel):
    """`PUT /api-keys/{id}`: omitted = keep; `null` clears `rate_limit`/`expires_at`."""

    model_config = ConfigDict(extra="forbid")

    name: KeyName | None = None
    queues: Scope | None = None
    rate_limit: RateLimit | None = None
    is_active: StrictBool | None = None
    expires_at: Expiry | None = None


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class ApiKey(Out):
    id: str
    organization_id: str
    name: str
    key_prefix: str | None = Field(None, description="sk_live_ / sk_test_ (sp_ for older keys)")
    queues: list[str]
    rate_limit: int | None = None
    is_active: bool
    created_at: datetime
    last_used: datetime | None = None
    expires_at: datetime | None = None


class ApiKeyCreated(Out):
    id: str
    key: str = Field(description="the raw key, shown only once")
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    queues: list[str]
    key_prefix: str | None = None
