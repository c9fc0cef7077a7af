"""Wire models for job requests (CONTRACT §7.6, §7.7). Responses are plain dicts (see service)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, ConfigDict, Field

from spooled_backend.core.openapi import Out
from spooled_backend.core.validators import (
    NullMeansDefault,
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


class _Body(NullMeansDefault):
    """`null` on an optional field means its default (CONTRACT §21 R13)."""


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
    # Long poll (issue 8): when nothing is claimable, wait up to this long for a job.
    wait_ms: Annotated[StrictInt, Field(ge=0, le=30_000)] | None = None


class _Ack(_Body):
    worker_id: Annotated[str, Field(min_length=1, max_length=255)]
    # Optional since CONTRACT §21 R1: absent (or null) = legacy fencing; "" is still 400.
    lease_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class CompleteJob(_Ack):
    result: Any = None


class FailJob(_Ack):
    error: Annotated[str, Field(min_length=1, max_length=2048)]


class AckCompleted(_Body):
    job_id: Annotated[str, Field(min_length=1, max_length=255)]
    lease_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None  # R1: optional
    result: Any = None


class AckFailed(_Body):
    job_id: Annotated[str, Field(min_length=1, max_length=255)]
    lease_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    error: Annotated[str, Field(min_length=1, max_length=2048)]


class AckJobs(_Body):
    """`POST /jobs/ack` (CONTRACT §20 D5): up to 100 items in `completed` + `failed`."""

    worker_id: Annotated[str, Field(min_length=1, max_length=255)]
    completed: Annotated[list[AckCompleted], Field(max_length=100)] = []
    failed: Annotated[list[AckFailed], Field(max_length=100)] = []


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


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class JobCreated(Out):
    id: str
    created: bool = Field(description="false on an idempotency-key hit (HTTP 200)")


class Job(Out):
    id: str
    organization_id: str
    queue_name: str
    status: str
    payload: Any
    result: Any = None
    retry_count: int
    max_retries: int
    last_error: str | None = None
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    priority: int
    tags: dict[str, Any] | list[Any] | None = None
    timeout_seconds: int
    parent_job_id: str | None = None
    completion_webhook: str | None = None
    assigned_worker_id: str | None = None
    lease_id: str | None = Field(None, description="only while processing")
    lease_expires_at: datetime | None = None
    idempotency_key: str | None = None
    updated_at: datetime
    workflow_id: str | None = None
    dependency_mode: str | None = None
    dependencies_met: bool | None = None


class JobSummary(Out):
    id: str
    queue_name: str
    status: str
    priority: int
    attempt: int = Field(description="same as retry_count")
    retry_count: int
    max_retries: int
    job_type: str
    last_error: str | None = None
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class JobStats(Out):
    pending: int
    scheduled: int
    processing: int
    completed: int
    failed: int
    deadletter: int
    cancelled: int
    total: int


class JobStatusItem(Out):
    id: str
    status: str
    queue_name: str
    retry_count: int
    created_at: datetime
    completed_at: datetime | None = None


class BulkSucceeded(Out):
    index: int
    job_id: str
    created: bool


class BulkFailed(Out):
    index: int
    error: str


class BulkResult(Out):
    succeeded: list[BulkSucceeded]
    failed: list[BulkFailed]
    total: int
    success_count: int
    failure_count: int


class ClaimedJob(Out):
    id: str
    queue_name: str
    payload: Any
    retry_count: int
    max_retries: int
    timeout_seconds: int
    lease_expires_at: datetime
    lease_id: str
    priority: int


class ClaimResult(Out):
    jobs: list[ClaimedJob]


class Acked(Out):
    success: bool


class AckItemResult(Out):
    """One item of `POST /jobs/ack`: `success`, or `code` + `message` as the single route's
    error body would have them."""

    job_id: str
    success: bool
    code: str | None = None
    message: str | None = None


class AckResult(Out):
    results: list[AckItemResult]


class FailResult(Out):
    success: bool
    will_retry: bool
    retry_delay_secs: int


class HeartbeatResult(Out):
    success: bool
    lease_expires_at: datetime


class PriorityChanged(Out):
    job_id: str
    old_priority: int
    new_priority: int


class HistoryEvent(Out):
    id: str
    job_id: str
    event_type: str
    worker_id: str | None = None
    details: Any = None
    created_at: datetime


class DlqRetried(Out):
    retried_count: int
    retried_jobs: list[str]
    job_ids: list[str]
    skipped_jobs: list[str]


class DlqPurged(Out):
    purged_count: int


class DependencyEdge(Out):
    job_id: str
    queue_name: str
    status: str
    completed: bool | None = None
    dependency_type: str | None = None


class JobDependencies(Out):
    job_id: str
    dependency_mode: str
    dependencies_met: bool
    dependencies: list[DependencyEdge]
    dependents: list[DependencyEdge]


class DependenciesAdded(Out):
    job_id: str
    dependencies_added: int
    added_count: int
    dependencies_met: bool
    dependency_mode: str
    status: str
