"""The delivery loop: sends due outbox rows with a per-process concurrency cap (CONTRACT §10.3).

Every replica runs one `Dispatcher`. Each round claims at most as many due rows as it has free
slots (`OUTGOING_WEBHOOK_MAX_CONCURRENT_DELIVERIES`) in one short transaction
(`queries.CLAIM_DUE`: `FOR UPDATE SKIP LOCKED`, the claim pushes `next_attempt_at` out by the
claim lease and sets a `claim_token`), then sends each in its own task and records the result
in another short transaction fenced by that token. So:

* a delivery is never sent by two processes at once (the claim is exclusive for the lease,
  which is far longer than a send can take: connect 5 s + 10 s, hard deadline);
* a process that stops or dies mid-send loses nothing: the row is still `pending` and is sent
  again by whoever claims it after the lease (at-least-once; receivers dedupe on the envelope
  `id`, which never changes, or on `X-Spooled-Delivery-Id`);
* retries wait in the database (`next_attempt_at`), not in memory, so a restart between
  attempts only delays them.

The loop wakes on `NOTIFY spooled_webhook_outbox` (sent by the outbox triggers at commit) when
the process has a listener, and polls every `poll_interval_secs` as a backstop and for retries
that come due.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

from spooled_backend.config import Settings
from spooled_backend.webhooks import delivery, service
from spooled_backend.webhooks import queries as q

log = structlog.get_logger(__name__)

CHANNEL = "spooled_webhook_outbox"
MAX_CLAIM_BATCH = 100


class Dispatcher:
    """Owns the process's webhook `Sender` and the delivery loop task."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        sender: delivery.Sender | None = None,
        *,
        poll_interval_secs: float = 1.0,
        claim_lease_secs: float = service.CLAIM_LEASE_SECS,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.sender = sender or delivery.Sender(
            settings.is_production,
            max_connections=max(settings.outgoing_webhook_max_concurrent_deliveries, 1),
        )
        self.capacity = max(settings.outgoing_webhook_max_concurrent_deliveries, 1)
        self.poll_interval_secs = poll_interval_secs
        self.claim_lease_secs = claim_lease_secs
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self.sent = 0

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def start(self, listener: Any = None) -> None:
        """Start the loop; `listener` (db/listener.py, optional) wakes it on NOTIFY."""
        if listener is not None:
            try:
                self._unsubscribe = await listener.subscribe(CHANNEL, self.wake)
                listener.on_reconnect(self.wake)
            except Exception as exc:  # noqa: BLE001 - polling still delivers
                log.warning("webhook loop runs without NOTIFY wake-ups", error=str(exc))
        self._task = asyncio.create_task(self._run(), name="loop:webhook_delivery")

    async def stop(self, grace_secs: float = 5.0) -> None:
        """Stop claiming, let in-flight sends finish for `grace_secs`, then cancel them (their
        rows stay claimed and are sent again after the lease)."""
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:  # noqa: BLE001
                pass
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace_secs)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.sender.aclose()

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            claimed = 0
            try:
                claimed = await self.dispatch_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive database hiccups
                failures += 1
                log.warning("webhook delivery loop failed", error=str(exc), failures=failures)
            if claimed and len(self._inflight) < self.capacity:
                continue  # more may be due right now
            delay = self.poll_interval_secs if failures == 0 else min(2.0**failures, 30.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def dispatch_once(self) -> int:
        """Claim what fits in the free slots and start sending; returns how many were claimed."""
        free = self.capacity - len(self._inflight)
        if free <= 0:
            return 0
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(q.CLAIM_DUE, min(free, MAX_CLAIM_BATCH), self.claim_lease_secs)
        for row in rows:
            task = asyncio.create_task(self._deliver(dict(row)))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free

    async def drain(self) -> None:
        """Wait for the sends started so far (tests)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _deliver(self, row: dict[str, Any]) -> None:
        try:
            request = service.request_for(row)
            if isinstance(request, str):
                async with self.pool.acquire() as conn:
                    await service.abandon(conn, row, request)
                return
            outcome = await self.sender.send(request)
            async with self.pool.acquire() as conn, conn.transaction():
                status = await service.record_attempt(conn, self.settings, row, outcome)
            self.sent += 1
            if status is None:
                log.info("webhook delivery claim lost; the newer attempt's result is kept",
                         delivery_id=row["id"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the loop
            log.warning("webhook delivery failed to record", delivery_id=row["id"], error=str(exc))
