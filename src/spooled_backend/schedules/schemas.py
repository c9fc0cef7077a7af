"""Wire models for schedules (CONTRACT §7.10): request bodies, and response models for the
OpenAPI document (the routes answer plain dicts of exactly these fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spooled_backend.core.validators import QueueName, StrictBool, StrictInt
from spooled_backend.schedules.cron import CronError, normalize_timezone, parse_cron

Priority = Annotated[StrictInt, Field(ge=-100, le=100)]
MaxRetries = Annotated[StrictInt, Field(ge=0, le=100)]
Timeout = Annotated[StrictInt, Field(ge=1, le=86400)]
Name = Annotated[str, Field(min_length=1, max_length=255)]
Description = Annotated[str, Field(max_length=1000)]
Tags = dict[str, Any] | list[Any]


def _cron(value: str) -> str:
    try:
        return parse_cron(value).expression
    except CronError as exc:
        raise ValueError(f"Invalid cron expression: {exc}") from None


def _timezone(value: str) -> str:
    try:
        return normalize_timezone(value)
    except CronError as exc:
        raise ValueError(f"Invalid timezone: {exc}") from None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("cron_expression", check_fields=False)
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return None if value is None else _cron(value)

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return None if value is None else _timezone(value)


class CreateSchedule(_Body):
    """`POST /schedules`. `payload_template` is required (any JSON but null); `max_retries` and
    `timeout_seconds` default to the queue's configuration, then the server defaults."""

    name: Name
    description: Description | None = None
    cron_expression: str
    timezone: str = "UTC"
    queue_name: QueueName
    payload_template: Any = Field(json_schema_extra={"description": "any JSON value but null"})
    priority: Priority = 0
    max_retries: MaxRetries | None = None
    timeout_seconds: Timeout | None = None
    tags: Tags | None = None
    metadata: Any = None


class UpdateSchedule(_Body):
    """`PUT /schedules/{id}`: any create field, plus `is_active`. `queue_name` is accepted and
    ignored (CONTRACT §7.10: the stored queue is kept)."""

    name: Name | None = None
    description: Description | None = None
    cron_expression: str | None = None
    timezone: str | None = None
    queue_name: Any = None
    payload_template: Any = None
    priority: Priority | None = None
    max_retries: MaxRetries | None = None
    timeout_seconds: Timeout | None = None
    tags: Tags | None = None
    metadata: Any = None
    is_active: StrictBool | None = None


# ---- responses (OpenAPI) ------------------------------------------------------------------


class ScheduleOut(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str | None = None
    cron_expression: str
    timezone: str
    queue_name: str
    payload_template: Any
    priority: int
    max_retries: int
    timeout_seconds: int
    is_active: bool
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    run_count: int
    tags: Tags | None = None
    metadata: Any = None
    created_at: datetime
    updated_at: datetime


class TriggerOut(BaseModel):
    job_id: str
    triggered_at: datetime


class ScheduleRunOut(BaseModel):
    id: str
    schedule_id: str
    job_id: str | None = None
    status: Literal["pending", "running", "completed", "failed"]
    error_message: str | None = None
    started_at: datetime
    completed_at: datetime | None = None
    job_status: str | None = Field(
        default=None, description="current status of the enqueued job"
    )
