"""Publishing job events as realtime envelopes (CONTRACT §14.1) on `org:<org_id>:events`.

Publishing is fire-and-forget after the database work committed: a Redis outage never fails a
job operation. Without Redis (degraded mode) events are not fanned out.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.asyncio import Redis

from spooled_backend.core.tenancy import after_commit
from spooled_backend.observability import metrics

log = structlog.get_logger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class EventBus:
    """Implements `core.events.Events` over Redis pub/sub."""

    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        self._tasks: set[asyncio.Task[None]] = set()

    def _publish(self, org_id: str, kind: str, data: dict[str, Any]) -> None:
        if self.redis is None:
            return
        data["timestamp"] = _now()
        message = json.dumps({"type": kind, "data": data}, default=str)
        channel = f"org:{org_id}:events"

        def start() -> None:
            task = asyncio.get_running_loop().create_task(self._send(channel, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        # Inside a request, publish only once its transaction has committed (core/tenancy.py).
        after_commit(start)

    async def _send(self, channel: str, message: str) -> None:
        assert self.redis is not None
        try:
            metrics.REDIS_OPERATIONS.inc()
            await self.redis.publish(channel, message)
        except Exception as exc:  # noqa: BLE001 - an outage must never fail the job operation
            log.warning("event publish failed", channel=channel, error=str(exc))

    async def drain(self) -> None:
        """Wait for in-flight publishes (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def job_created(self, org_id: str, job_id: str, queue_name: str, priority: int, status: str) -> None:
        self._publish(org_id, "JobCreated", {"job_id": job_id, "queue_name": queue_name, "priority": priority})

    def job_started(self, org_id: str, job_id: str, queue_name: str, worker_id: str) -> None:
        self._publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": "pending", "new_status": "processing"},
        )

    def job_completed(
        self, org_id: str, job_id: str, queue_name: str, duration_ms: int, result: Any
    ) -> None:
        self._publish(
            org_id,
            "JobCompleted",
            {"job_id": job_id, "queue_name": queue_name, "duration_ms": duration_ms, "result": result},
        )

    def job_failed(
        self, org_id: str, job_id: str, queue_name: str, error: str, retry_count: int, status: str
    ) -> None:
        self._publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": "processing", "new_status": status},
        )
        self._publish(
            org_id,
            "JobFailed",
            {"job_id": job_id, "queue_name": queue_name, "error": error, "retry_count": retry_count},
        )

    def job_status(
        self, org_id: str, job_id: str, queue_name: str, old_status: str, new_status: str
    ) -> None:
        self._publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": old_status, "new_status": new_status},
        )
