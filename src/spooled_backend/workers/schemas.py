"""Wire models for worker requests (CONTRACT §7.9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from spooled_backend.core.jsonvalue import json_size
from spooled_backend.core.openapi import Out
from spooled_backend.core.validators import WORKER_ID_RE, NullMeansDefault, QueueName, StrictInt

METADATA_MAX_BYTES = 65_536
HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Worker metadata is an object of at most 64 KiB of JSON."""
    if value is not None and json_size(value) > METADATA_MAX_BYTES:
        raise ValueError("metadata must be at most 64 KiB of JSON")
    return value


class RegisterWorker(NullMeansDefault):
    model_config = ConfigDict(extra="ignore")

    queue_name: QueueName
    hostname: Annotated[str, Field(min_length=1, max_length=255)]
    worker_id: str | None = None
    worker_type: Annotated[str, Field(max_length=50)] | None = None
    max_concurrency: Annotated[StrictInt, Field(ge=1, le=100)] = 5
    metadata: dict[str, Any] | None = None
    version: Annotated[str, Field(max_length=50)] | None = None

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not set(value) <= HOSTNAME_CHARS or value[0] in ".-" or value[-1] in ".-":
            raise ValueError(
                "hostname may contain only [A-Za-z0-9._-] and not start/end with . or -"
            )
        return value

    _check_metadata = field_validator("metadata")(_metadata)

    @field_validator("worker_id")
    @classmethod
    def _worker_id(cls, value: str | None) -> str | None:
        if value is not None and not WORKER_ID_RE.match(value):
            raise ValueError("worker_id must be 1-128 characters of [A-Za-z0-9._-]")
        return value


class WorkerHeartbeat(NullMeansDefault):
    model_config = ConfigDict(extra="ignore")

    current_jobs: Annotated[StrictInt, Field(ge=0, le=1000)]
    status: Any = None  # healthy/degraded/draining; anything else is coerced (CONTRACT §9.2)
    metadata: dict[str, Any] | None = None

    _check_metadata = field_validator("metadata")(_metadata)


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class WorkerRegistered(Out):
    id: str
    queue_name: str
    lease_duration_secs: int
    heartbeat_interval_secs: int


class WorkerSummary(Out):
    """Public names and the raw column names (CONTRACT §21 R5)."""

    id: str
    queue_name: str
    hostname: str
    status: str
    current_jobs: int
    current_job_count: int
    max_concurrency: int
    max_concurrent_jobs: int
    last_heartbeat: datetime
    registered_at: datetime
    created_at: datetime
    jobs_processed: int | None = None
    jobs_failed: int | None = None


class Worker(WorkerSummary):
    organization_id: str
    queue_names: list[str]
    worker_type: str | None = None
    metadata: dict[str, Any]
    version: str | None = None
    updated_at: datetime
