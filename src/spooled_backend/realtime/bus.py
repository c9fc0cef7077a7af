"""The event bus: every state change as a realtime envelope (CONTRACT §14.1), published once,
after its transaction commits, to the subscribers of every process.

`EventBus` implements `core.events.Events`. A service calls e.g. `events.job_created(...)`;
the bus defers the work to the request's commit (`core.tenancy.after_commit`; dropped on
rollback), then builds the envelope once, hands it to this process's subscribers (`Hub`) and,
when another process has announced subscribers for that organization, queues it for them
(`Transport`: Redis pub/sub when Redis is up, PostgreSQL NOTIFY otherwise). When nobody is
subscribed anywhere a publish costs two set lookups: no serialization, no round trip.

Adding an event (other domains): add the method to `core.events.Events` and `NoEvents`, and
here a method that calls `self.publish(org_id, "<Variant>", {...})` with the contract's fields
(`timestamp` is added). Unknown variants are dropped by the SDKs, so only contract variants
reach clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from spooled_backend.core.tenancy import after_commit
from spooled_backend.realtime.envelope import Event, build_event, control_event, parse_event
from spooled_backend.realtime.hub import Hub, Subscriber
from spooled_backend.realtime.transport import Transport

log = structlog.get_logger(__name__)

HEALTH_INTERVAL_SECS = 10.0
AUTH_REVOKED_CHANNEL = "spooled_auth_revoked"  # hotpath's trigger: `k:<key id>` | `o:<org id>`


class EventBus:
    """Implements `core.events.Events`; also the registry realtime routes subscribe through."""

    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        self.hub = Hub(on_last=self._on_last)
        self.transport: Transport | None = None
        self.listener: Any = None
        self._health: tuple[bool, bool] | None = None
        self._health_task: asyncio.Task[None] | None = None
        # credential sha256 → (monotonic time, error or None): realtime/auth.py still_valid
        self.auth_checks: dict[str, tuple[float, Any]] = {}

    # lifecycle ------------------------------------------------------------------------------

    async def start(self, pool: asyncpg.Pool, listener: Any) -> None:
        """Connect the cross-process transport (lifespan; `listener` is db.listener.Listener)."""
        self.listener = listener
        self.transport = Transport(pool, self.redis, listener, self._deliver_remote,
                                   self.hub.orgs)
        await self.transport.start()
        if listener is not None:
            await listener.subscribe(AUTH_REVOKED_CHANNEL, self._on_revoked)
        self._health_task = asyncio.get_running_loop().create_task(
            self._health_loop(), name="realtime:health"
        )

    async def drain(self) -> None:
        """Send what is queued, stop the transport (shutdown)."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self.transport is not None:
            await self.transport.stop()

    # publishing -----------------------------------------------------------------------------

    def wanted(self, org_id: str) -> bool:
        """Whether any process has a subscriber of `org_id` (else publishing is a no-op)."""
        return self.hub.has(org_id) or (self.transport is not None and self.transport.wanted(org_id))

    def watched_orgs(self) -> list[str]:
        """Organizations with subscribers in this or another process."""
        remote = self.transport.interest.orgs() if self.transport is not None else []
        return sorted(set(self.hub.orgs()) | set(remote))

    def publish(self, org_id: str, kind: str, data: dict[str, Any]) -> None:
        """Publish envelope `kind` with `data` after the current transaction commits."""
        if not self.wanted(org_id):
            return

        def send() -> None:
            event = build_event(org_id, kind, data)
            self.hub.dispatch(event)
            transport = self.transport
            if transport is not None and transport.wanted(org_id):
                transport.send(org_id, event.text)

        after_commit(send)

    def _deliver_remote(self, org_id: str, text: str) -> None:
        event = parse_event(org_id, text)
        if event is not None:
            self.hub.dispatch(event)

    # subscribing ----------------------------------------------------------------------------

    async def subscribe(self, sub: Subscriber) -> None:
        """Register `sub`; the first subscriber of an organization starts receiving its events
        from other processes (awaited, so events produced elsewhere from now on arrive)."""
        first = self.hub.add(sub)
        if first and self.transport is not None:
            try:
                await self.transport.watch(sub.org_id)
            except Exception as exc:  # noqa: BLE001 - local events still flow
                log.warning("realtime watch failed", org_id=sub.org_id, error=str(exc))

    def unsubscribe(self, sub: Subscriber) -> None:
        self.hub.remove(sub)

    def _on_last(self, org_id: str) -> None:
        if self.transport is not None:
            self.transport.unwatch(org_id)

    def _on_revoked(self, payload: str) -> None:
        """A key or an organization lost its access: its streams re-validate at once."""
        kind, _, ident = payload.partition(":")
        self.auth_checks.clear()
        if kind == "k":
            self.hub.poke(lambda sub: sub.auth.api_key_id == ident)
        elif kind == "o":
            self.hub.poke(lambda sub: sub.org_id == ident)

    # system health --------------------------------------------------------------------------

    def health(self) -> tuple[bool, bool]:
        """(database, redis) as this process sees them: its LISTEN connection is up, its Redis
        subscriber is connected."""
        database = bool(getattr(self.listener, "connected", True))
        redis = self.redis is not None and (self.transport is None or self.transport.redis_connected)
        return database, redis

    def health_event(self) -> Event:
        database, redis = self.health()
        return control_event("SystemHealth", database=database, redis=redis)

    async def _health_loop(self) -> None:
        """WebSocket subscribers get `SystemHealth` when it changes (SSE streams poll it)."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_SECS)
            current = self.health()
            if self._health is not None and current != self._health:
                self.hub.broadcast(self.health_event(), kinds=("ws",))
            self._health = current

    # core.events.Events ---------------------------------------------------------------------

    def job_created(self, org_id: str, job_id: str, queue_name: str, priority: int, status: str) -> None:
        self.publish(org_id, "JobCreated", {"job_id": job_id, "queue_name": queue_name, "priority": priority})

    def job_started(self, org_id: str, job_id: str, queue_name: str, worker_id: str) -> None:
        self.publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": "pending", "new_status": "processing"},
        )

    def job_completed(
        self, org_id: str, job_id: str, queue_name: str, duration_ms: int, result: Any
    ) -> None:
        self.publish(
            org_id,
            "JobCompleted",
            {"job_id": job_id, "queue_name": queue_name, "duration_ms": duration_ms, "result": result},
        )
        self.publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": "processing", "new_status": "completed"},
        )

    def job_failed(
        self, org_id: str, job_id: str, queue_name: str, error: str, retry_count: int, status: str
    ) -> None:
        self.publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": "processing", "new_status": status},
        )
        self.publish(
            org_id,
            "JobFailed",
            {"job_id": job_id, "queue_name": queue_name, "error": error, "retry_count": retry_count},
        )

    def job_status(
        self, org_id: str, job_id: str, queue_name: str, old_status: str, new_status: str
    ) -> None:
        self.publish(
            org_id,
            "JobStatusChange",
            {"job_id": job_id, "queue_name": queue_name, "old_status": old_status, "new_status": new_status},
        )

    def worker_registered(self, org_id: str, worker_id: str, queue_name: str) -> None:
        self.publish(org_id, "WorkerRegistered", {"worker_id": worker_id, "queue_name": queue_name})

    def worker_heartbeat(
        self, org_id: str, worker_id: str, status: str, current_job_id: str | None = None
    ) -> None:
        self.publish(
            org_id,
            "WorkerHeartbeat",
            {"worker_id": worker_id, "status": status, "current_job_id": current_job_id},
        )

    def worker_deregistered(self, org_id: str, worker_id: str) -> None:
        self.publish(org_id, "WorkerDeregistered", {"worker_id": worker_id})

    def queue_stats(
        self, org_id: str, queue_name: str, pending: int, processing: int, completed: int,
        failed: int,
    ) -> None:
        self.publish(
            org_id,
            "QueueStats",
            {"queue_name": queue_name, "pending": pending, "processing": processing,
             "completed": completed, "failed": failed},
        )

    # Dependencies and workflows (added by deps-workflows; no realtime envelope in CONTRACT
    # §14.1 for these — the realtime and webhooks helpers decide what they fan out).
    def job_released(self, org_id: str, job_id: str, queue_name: str) -> None:
        pass

    def workflow_completed(
        self, org_id: str, workflow_id: str, name: str, total_jobs: int, completed_jobs: int,
        failed_jobs: int,
    ) -> None:
        pass

    def workflow_failed(
        self, org_id: str, workflow_id: str, name: str, total_jobs: int, completed_jobs: int,
        failed_jobs: int,
    ) -> None:
        pass

    def schedule_triggered(
        self, org_id: str, schedule_id: str, job_id: str, queue_name: str
    ) -> None:
        """Webhook-only event (`schedule.triggered`, §10.1): no realtime envelope in §14.1, so
        nothing is published here; the outgoing-webhook dispatcher hooks in at this method."""
