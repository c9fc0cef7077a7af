"""Wire models for job requests (CONTRACT §7.6, §7.7). Responses are plain dicts (see service)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from spooled_backend.core.validators import (
    QueueName,
    StrictBool,
    StrictInt,
    UtcDatetime,
    WebhookUrl,
)

Priority = Annotated[StrictInt, Field(ge=-100, le=100)]
MaxRetries = Annotated[StrictInt, Field(ge=0, le=100)]
Timeout = Annotated[StrictInt, Field(ge=1, le=86400)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255)]
LeaseSecs = Annotated[StrictInt, Field(ge=5, le=3600)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateJob(_Body):
    queue_name: QueueName
    payload: Any
    priority: Priority = 0
    max_retries: MaxRetries | None = None
    timeout_seconds: Timeout | None = None
    scheduled_at: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None
    idempotency_key: IdempotencyKey | None = None
    tags: dict[str, Any] | list[Any] | None = None
    parent_job_id: str | None = None
    completion_webhook: Annotated[WebhookUrl, Field(max_length=2048)] | None = None
    completion_webhook_secret: Annotated[str, Field(max_length=255)] | None = None


class BulkItem(_Body):
    payload: Any
    priority: Priority | None = None
    idempotency_key: IdempotencyKey | None = None
    scheduled_at: UtcDatetime | None = None


class BulkCreate(_Body):
    queue_name: QueueName
    jobs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=100)]
    default_priority: Priority = 0
    default_max_retries: MaxRetries | None = None
    default_timeout_seconds: Timeout | None = None


class ClaimJobs(_Body):
    queue_name: QueueName
    worker_id: Annotated[str, Field(min_length=1, max_length=255)]
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    lease_duration_secs: LeaseSecs | None = None


class _Ack(_Body):
    worker_id: Annotated[str, Field(min_length=1, max_length=255)]
    # Optional since CONTRACT §21 R1: absent (or null) = legacy fencing; "" is still 400.
    lease_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class CompleteJob(_Ack):
    result: Any = None


class FailJob(_Ack):
    error: Annotated[str, Field(min_length=1, max_length=2048)]


class HeartbeatJob(_Ack):
    lease_duration_secs: LeaseSecs = 30


class BoostPriority(_Body):
    priority: Priority


class RetryDlq(_Body):
    job_ids: Annotated[list[str], Field(max_length=100)] | None = None
    queue_name: QueueName | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 100


class PurgeDlq(_Body):
    confirm: StrictBool
    queue_name: QueueName | None = None
    older_than: UtcDatetime | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=10000)] = 10000


class AddDependencies(_Body):
    """`POST /jobs/{id}/dependencies` (CONTRACT §7.6 row 49, §19 row 17): the Python SDK sends
    `depends_on` + `dependency_mode`, the Node SDK `depends_on_job_ids` + `dependency_type`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    depends_on: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]],
        Field(min_length=1, max_length=100, validation_alias=AliasChoices("depends_on", "depends_on_job_ids")),
    ]
    dependency_mode: Literal["all", "any"] = Field(
        "all", validation_alias=AliasChoices("dependency_mode", "dependency_type")
    )


OrderDir = Literal["asc", "desc"]
