"""Wire models for workflows (CONTRACT §7.11, §19 row 16): the create request, and the
documented response shapes (responses are built as dicts in service.py)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from spooled_backend.core.validators import QueueName, StrictInt, UtcDatetime

MAX_WORKFLOW_JOBS = 1000  # CONTRACT §7.11 says 100; the issue asks for 1,000-node graphs
NAME_RE = re.compile(r"^[A-Za-z0-9 _.()\-]{1,255}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            "name must be 1-255 characters of letters, digits, spaces and _ . ( ) -"
        )
    return value


def _check_key(value: str) -> str:
    if not KEY_RE.match(value):
        raise ValueError("key must be 1-100 characters of letters, digits, '_' and '-'")
    return value


WorkflowName = Annotated[str, AfterValidator(_check_name)]
JobKey = Annotated[str, AfterValidator(_check_key)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WorkflowJobIn(_Body):
    key: JobKey
    queue_name: QueueName
    payload: Any
    depends_on: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=MAX_WORKFLOW_JOBS)
    ] | None = None
    dependency_mode: Literal["all", "any"] | None = None
    priority: Annotated[StrictInt, Field(ge=-100, le=100)] | None = None
    max_retries: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    timeout_seconds: Annotated[StrictInt, Field(ge=1, le=86400)] | None = None
    expires_at: UtcDatetime | None = None
    tags: dict[str, Any] | list[Any] | None = None


class CreateWorkflow(_Body):
    name: WorkflowName
    description: Annotated[str, Field(max_length=1000)] | None = None
    metadata: Any = None
    jobs: Annotated[list[WorkflowJobIn], Field(min_length=1, max_length=MAX_WORKFLOW_JOBS)]


# ---- documented responses (OpenAPI) ------------------------------------------------------


class JobKeyOut(BaseModel):
    key: str
    job_id: str


class CreateWorkflowOut(BaseModel):
    workflow_id: str
    job_ids: list[JobKeyOut]
    status: str


class WorkflowOut(BaseModel):
    """WorkflowResponse (list, cancel, retry)."""

    id: str
    name: str
    description: str | None = None
    status: Literal["pending", "running", "completed", "failed", "cancelled"]
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    progress_percent: float
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metadata: Any = None


class WorkflowJobError(BaseModel):
    type: str = "JobError"
    message: str
    stack: str | None = None


class WorkflowJobOut(BaseModel):
    id: str
    organization_id: str
    key: str | None = None
    queue: str
    queue_name: str
    job_type: str = "job"
    payload: Any = None
    status: str
    priority: int
    attempt: int
    retry_count: int
    max_retries: int
    backoff_type: str = "exponential"
    timeout_ms: int
    timeout_seconds: int
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    next_retry_at: datetime | None = None
    result: Any = None
    error: WorkflowJobError | None = None
    metadata: Any = None
    workflow_id: str
    parent_job_id: str | None = None
    depends_on: list[str]
    dependency_mode: str
    dependencies_met: bool


class WorkflowEdgeOut(BaseModel):
    parent_job_id: str
    child_job_id: str
    dependency_type: str


class WorkflowProgressOut(BaseModel):
    total: int
    completed: int
    failed: int
    pending: int
    processing: int


class WorkflowDetailOut(WorkflowOut):
    organization_id: str
    jobs: list[WorkflowJobOut]
    dependencies: list[WorkflowEdgeOut]
    progress: WorkflowProgressOut


class WorkflowJobStatusOut(BaseModel):
    job_id: str
    key: str | None = None
    status: str
    progress: float
