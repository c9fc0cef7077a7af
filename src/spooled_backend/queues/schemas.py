"""Wire models for queue requests (CONTRACT §7.8). Responses are plain dicts (see service)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spooled_backend.core.jsonvalue import check_storable, json_size
from spooled_backend.core.openapi import Out
from spooled_backend.core.validators import StrictBool, StrictInt

RATE_LIMIT_MAX = 100_000  # jobs per second; larger values are clamped (CONTRACT §7.8)
SETTINGS_MAX_BYTES = 65_536


class UpdateQueueConfig(BaseModel):
    """`PUT /queues/{name}/config`. Omitted (or null) fields keep their stored value, except
    `rate_limit: null`, which removes the limit. `queue_name` in the body is ignored."""

    model_config = ConfigDict(extra="ignore")

    max_retries: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    default_timeout: Annotated[StrictInt, Field(ge=1, le=86400)] | None = None
    rate_limit: Annotated[StrictInt, Field(ge=1)] | None = None
    enabled: StrictBool | None = None
    settings: dict[str, Any] | None = None
    queue_name: Any = None

    @field_validator("rate_limit")
    @classmethod
    def _clamp_rate(cls, value: int | None) -> int | None:
        return None if value is None else min(value, RATE_LIMIT_MAX)

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_storable(value, "settings")
            if json_size(value) > SETTINGS_MAX_BYTES:
                raise ValueError("settings must be at most 64 KiB of JSON")
        return value

    @property
    def sets_rate_limit(self) -> bool:
        """True when the body carried `rate_limit` (a number, or null to remove it)."""
        return "rate_limit" in self.model_fields_set


class PauseQueue(BaseModel):
    """`POST /queues/{name}/pause` optional body `{reason?}` (≤500 chars)."""

    model_config = ConfigDict(extra="ignore")

    reason: Annotated[str, Field(max_length=500)] | None = None


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class QueueSummary(Out):
    queue_name: str
    max_retries: int
    default_timeout: int = Field(description="seconds")
    rate_limit: int | None = Field(None, description="jobs per second; null = unlimited")
    enabled: bool


class QueueConfig(QueueSummary):
    id: str = Field(description='"implicit:<name>" for a queue that has jobs but no config row')
    organization_id: str
    settings: dict[str, Any]
    created_at: datetime | None = None
    updated_at: datetime | None = None


class QueueStats(Out):
    queue_name: str
    pending_jobs: int
    processing_jobs: int
    completed_jobs_24h: int
    failed_jobs_24h: int
    avg_processing_time_ms: float | None = None
    max_job_age_seconds: int | None = None
    active_workers: int


class QueuePaused(Out):
    queue_name: str
    paused: bool
    paused_at: datetime
    reason: str | None = None


class QueueResumed(Out):
    queue_name: str
    resumed: bool
    paused_duration_secs: int
