"""Supervised background loops. Singleton work takes a transaction-scoped advisory lock, so
any number of replicas can run them side by side (STYLE.md: processes and loops)."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import structlog

from spooled_backend.core import tenancy
from spooled_backend.core.state import AppState
from spooled_backend.jobs import dependencies
from spooled_backend.realtime.tasks import QueueStatsPublisher
from spooled_backend.scheduler import recovery, retention
from spooled_backend.workers import liveness

log = structlog.get_logger(__name__)

Work = Callable[[asyncpg.Connection], Awaitable[object]]

# Each wait is 90-100 % of the interval, drawn anew: loops started together (5 s and 10 s
# intervals) otherwise fired at the same instant every 10 s, and that burst of sweeps stalled
# the request path for ~50 ms (bench pickup latency: the slowest pickups all fell in it).
JITTER = 0.9


@dataclass(frozen=True)
class Loop:
    name: str
    interval_secs: float
    work: Work


def lock_key(name: str) -> int:
    """Stable 32-bit advisory-lock key per loop name."""
    return zlib.crc32(f"spooled:loop:{name}".encode())


async def run_once(pool: asyncpg.Pool, loop: Loop) -> bool:
    """One guarded iteration; False when another replica holds the loop's lock. Events the
    work publishes leave after its transaction commits (dropped if it fails)."""
    pending = tenancy.open_after_commit()
    committed = False
    try:
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_key(loop.name)):
                return False
            await loop.work(conn)
        committed = True
        return True
    finally:
        tenancy.close_after_commit(pending, committed)


async def supervise(pool: asyncpg.Pool, loop: Loop, stop: asyncio.Event) -> None:
    """Run `loop` every `interval_secs` (never later; see JITTER) until `stop` is set; errors
    are logged, never fatal."""
    failures = 0
    while not stop.is_set():
        try:
            await run_once(pool, loop)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a loop must survive database hiccups
            failures += 1
            log.warning("background loop failed", loop=loop.name, error=str(exc), failures=failures)
        delay = (loop.interval_secs * random.uniform(JITTER, 1.0) if failures == 0
                 else min(loop.interval_secs * 2**failures, 60))
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass


DEPENDENCY_SWEEP_SECS = 10.0


def default_loops(state: AppState) -> list[Loop]:
    s = state.settings
    events = state.events
    return [
        Loop("activate_scheduled", s.scheduler_activate_interval_secs,
             lambda c: recovery.activate_scheduled(c, events)),
        Loop("lease_recovery", s.scheduler_lease_recovery_interval_secs,
             lambda c: recovery.recover_expired_leases(c, events)),
        Loop("expire_jobs", s.scheduler_activate_interval_secs,
             lambda c: recovery.expire_jobs(c, events)),
        Loop("metrics", s.scheduler_metrics_interval_secs, recovery.refresh_gauges),
        # healthy → degraded → offline by missed heartbeats; offline workers' jobs recovered
        Loop("worker_liveness", s.scheduler_worker_liveness_interval_secs,
             lambda c: liveness.sweep_workers(c, s, events)),
        # backstop: dependents/workflows a transition did not settle (CONTRACT §15)
        Loop("dependency_sweep", DEPENDENCY_SWEEP_SECS,
             lambda c: dependencies.sweep_dependencies(c, events)),
        # per-org retention of finished jobs, history, webhook deliveries (CONTRACT §15, ops)
        Loop("retention", s.scheduler_maintenance_interval_secs,
             lambda c: retention.sweep_retention(c, s)),
        # QueueStats envelopes for organizations someone watches live (realtime/tasks.py)
        Loop("realtime_queue_stats", s.realtime_queue_stats_secs, QueueStatsPublisher(events).run),
    ]


class Supervisor:
    """Owns the loop tasks: start them, stop them with a grace period, then cancel."""

    def __init__(self, pool: asyncpg.Pool, loops: list[Loop]) -> None:
        self.pool = pool
        self.loops = loops
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for loop in self.loops:
            task = asyncio.create_task(supervise(self.pool, loop, self._stop), name=f"loop:{loop.name}")
            self._tasks.append(task)

    async def stop(self, grace_secs: float = 5.0) -> None:
        self._stop.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace_secs)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
