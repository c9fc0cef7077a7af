"""The cron firing loop (CONTRACT §9.3, §15): a supervised task per process.

It sleeps until the earliest `next_run_at` (measured on the database clock), fires every due
schedule, and sleeps again. It wakes early when a schedule is created, updated or resumed: in
this process through `AppState.schedule_wake`, in every replica through the
`spooled_schedules` NOTIFY (delivered at commit, via the process's listener). A backstop poll
(`BACKSTOP_SECS`) covers lost notifications.

Each fire is one transaction: the schedule row is taken with `FOR UPDATE SKIP LOCKED`, so any
number of replicas run this loop side by side without a double fire (and the unique index on
`schedule_runs (schedule_id, scheduled_for)` backs that up). A schedule that cannot fire
records a failed run and never stops the others; one that breaks in an unexpected way is set
aside for `QUARANTINE_SECS` in this process and gets a failed run if that can be written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from spooled_backend.core import tenancy
from spooled_backend.core.state import AppState
from spooled_backend.schedules import cron, service
from spooled_backend.schedules import queries as q

log = structlog.get_logger(__name__)

BACKSTOP_SECS = 10.0
LOCKED_ELSEWHERE_SECS = 0.02  # due but row-locked by another replica: look again shortly
QUARANTINE_SECS = 60.0
ERROR_BACKOFF_SECS = 1.0
DRAINERS = 4  # schedules fired concurrently when many are due at once


class ScheduleFirer:
    """Owns the firing task: `start()`, `stop()`, `wake()`; `fire_all_due()` for tests."""

    def __init__(self, state: AppState, *, drainers: int = DRAINERS) -> None:
        self.state = state
        self.drainers = drainers
        self.fired = 0  # fires (completed or failed runs) by this process
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._quarantine: dict[str, float] = {}
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def _wake(self) -> asyncio.Event:
        return self.state.schedule_wake

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        listener = self.state.listener
        if listener is not None:
            self._unsubscribe = await listener.subscribe(q.NOTIFY_CHANNEL, lambda _: self.wake())
            listener.on_reconnect(self.wake)
        self._task = asyncio.create_task(self._run(), name="loop:schedules")

    async def stop(self, grace_secs: float = 5.0) -> None:
        self._stop.set()
        self.wake()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=grace_secs)
        if not done:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                fired = await self.fire_all_due()
                delay = await self.seconds_to_next()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop survives database hiccups
                failures += 1
                log.warning("schedule loop failed", error=str(exc), failures=failures)
                fired, delay = 0, min(ERROR_BACKOFF_SECS * 2**failures, BACKSTOP_SECS)
            if delay is None:
                delay = BACKSTOP_SECS
            elif delay <= 0:
                # still due after draining: locked by another replica's fire in progress
                delay = 0.0 if fired else LOCKED_ELSEWHERE_SECS
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(delay, BACKSTOP_SECS))
            except TimeoutError:
                pass

    def _skipped(self) -> list[str]:
        now = time.monotonic()
        for schedule_id, until in list(self._quarantine.items()):
            if until <= now:
                del self._quarantine[schedule_id]
        return list(self._quarantine)

    async def seconds_to_next(self) -> float | None:
        """Seconds until the earliest active schedule is due (≤ 0: due); None when none."""
        async with self.state.pool.acquire() as conn:
            value: float | None = await conn.fetchval(q.SECONDS_TO_NEXT, self._skipped())
        return value

    async def fire_all_due(self) -> int:
        """Fire every schedule due now (several at once); returns how many fired."""
        counts = await asyncio.gather(*(self._drain() for _ in range(self.drainers)))
        return sum(counts)

    async def _drain(self) -> int:
        fired = 0
        while not self._stop.is_set() and await self.fire_one():
            fired += 1
        return fired

    async def fire_one(self) -> bool:
        """Claim and fire one due schedule in its own transaction; False when none is due."""
        state = self.state
        async with state.pool.acquire() as conn:
            pending = tenancy.open_after_commit()  # events leave after the commit
            committed = False
            row: asyncpg.Record | None = None
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(q.CLAIM_DUE, self._skipped())
                    if row is None:
                        return False
                    await service.fire_due(conn, state.settings, state.events, row)
                committed = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad schedule never stops the others
                if row is None:
                    raise
                log.error("schedule fire failed", schedule_id=row["id"], error=repr(exc))
                self._quarantine[row["id"]] = time.monotonic() + QUARANTINE_SECS
                await self._record_broken(conn, row, exc)
            finally:
                tenancy.close_after_commit(pending, committed)
        self.fired += 1
        return True

    async def _record_broken(self, conn: asyncpg.Connection, row: Any, exc: Exception) -> None:
        """After an unexpected failure: a failed run and the cron moved on, if that works."""
        try:
            async with conn.transaction():
                locked = await conn.fetchrow(
                    "SELECT id FROM schedules WHERE id = $1 FOR UPDATE SKIP LOCKED", row["id"]
                )
                if locked is None:
                    return
                try:
                    nxt = cron.next_fire_text(row["cron_expression"], row["timezone"], row["now"])
                except cron.CronError:
                    nxt = None
                await conn.execute(q.ADVANCE, row["id"], row["organization_id"], nxt)
                await conn.execute(
                    q.INSERT_RUN, row["organization_id"], row["id"], None, "failed",
                    f"Internal error while firing: {type(exc).__name__}", None, None,
                )
        except Exception as again:  # noqa: BLE001 - quarantine still keeps the loop going
            log.error("could not record the failed fire", schedule_id=row["id"], error=repr(again))
