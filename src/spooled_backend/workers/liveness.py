"""Worker liveness by missed heartbeats (CONTRACT §9.2, §8.2), run as a supervised loop.

Thresholds (Settings, so tests can shorten them):
* healthy → degraded once the last heartbeat is older than
  `WORKER_DEGRADED_AFTER_MISSED_HEARTBEATS` (3) × `WORKER_HEARTBEAT_INTERVAL_SECS` (10) = 30 s;
* any live status (healthy, degraded, draining) → offline once it is older than
  `WORKER_OFFLINE_AFTER_SECS` (120 s, the contract's 2 minutes). The jobs such a worker still
  holds are recovered at once — retried with backoff ("Worker went offline") or dead-lettered
  ("Max retries exceeded after worker went offline") — without waiting for their leases.
The sweep runs every `SCHEDULER_WORKER_LIVENESS_INTERVAL_SECS` (15 s), so detection lags the
threshold by at most one interval. A heartbeat brings a degraded/offline worker back.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.events import Events, NoEvents
from spooled_backend.jobs import dependencies
from spooled_backend.observability import metrics
from spooled_backend.workers import queries as q

BATCH = 500
OFFLINE_RETRY_REASON = "Worker went offline"
OFFLINE_EXHAUSTED_REASON = "Max retries exceeded after worker went offline"
LEASE_RETRY_REASON = "Lease expired (worker timeout)"
LEASE_EXHAUSTED_REASON = "Max retries exceeded after lease expiration"


def degraded_after_secs(settings: Settings) -> float:
    """Seconds without a heartbeat after which a healthy worker is degraded."""
    return float(
        settings.worker_degraded_after_missed_heartbeats * settings.worker_heartbeat_interval_secs
    )


async def release_worker_jobs(
    conn: asyncpg.Connection,
    workers: Sequence[tuple[str, str]],
    *,
    only_expired: bool,
    events: Events | None = None,
) -> int:
    """Recover the processing jobs held by `workers` ((organization_id, worker_id) pairs):
    retry with backoff or dead-letter (+ audit row). `only_expired=True` touches only leases
    that already expired (deregister, CONTRACT §19 #12); False takes every lease (offline).
    Returns how many jobs moved."""
    if not workers:
        return 0
    sink = events or NoEvents()
    if only_expired:
        reasons = (LEASE_RETRY_REASON, LEASE_EXHAUSTED_REASON, "lease_expired")
    else:
        reasons = (OFFLINE_RETRY_REASON, OFFLINE_EXHAUSTED_REASON, "worker_offline")
    rows = await conn.fetch(
        q.RELEASE_WORKER_JOBS,
        [org for org, _ in workers],
        [worker for _, worker in workers],
        *reasons[:2],
        only_expired,
        reasons[2],
    )
    for r in rows:
        if r["status"] == "deadletter":
            metrics.JOBS_DEADLETTERED.inc(queue=r["queue_name"], organization=r["organization_id"])
        sink.job_failed(
            r["organization_id"],
            r["id"],
            r["queue_name"],
            r["last_error"],
            r["retry_count"],
            r["status"],
        )
    if rows:
        dependencies.emit(sink, rows[0]["settled"])
    return len(rows)


async def sweep_workers(
    conn: asyncpg.Connection, settings: Settings, events: Events | None = None
) -> tuple[int, int, int]:
    """One liveness pass over every organization: (degraded, offline, jobs recovered).

    Safe on any number of replicas (rows taken with SKIP LOCKED; the loop also holds its
    advisory lock). The staleness test is re-checked on the locked row, so a heartbeat that
    lands first always wins."""
    offline = await conn.fetch(q.MARK_OFFLINE, settings.worker_offline_after_secs, BATCH)
    degraded = await conn.fetch(q.MARK_DEGRADED, degraded_after_secs(settings), BATCH)
    recovered = await release_worker_jobs(
        conn,
        [(r["organization_id"], r["id"]) for r in offline],
        only_expired=False,
        events=events,
    )
    return len(degraded), len(offline), recovered
