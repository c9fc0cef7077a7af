"""Worker job counters (`workers.jobs_processed` / `jobs_failed`) off the hot row (issue 8).

Every complete used to run `UPDATE workers SET jobs_processed = jobs_processed + 1` in its
statement: an SDK worker with concurrency > 1 made its concurrent completes queue on that one
row (2.6 connections on average waited on `Lock:transactionid` in the drain's profile), and each
increment wrote a new version of the row. Now each process adds the counts in memory after the
acknowledging transaction commits, and writes them as one array UPDATE per second
(`flush_all`, a task of the app lifespan), before any API read of workers of that organization
(`flush_org`: the answer is exact for what this process acknowledged) and when a worker
deregisters. Counts acknowledged on another process show up within one second; a crash loses at
most the last second of counts (they are statistics, not job state).
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from spooled_backend.core.tenancy import after_commit

log = structlog.get_logger(__name__)

FLUSH_EVERY_SECS = 1.0

ADD_COUNTS = """
UPDATE workers w SET jobs_processed = w.jobs_processed + d.processed,
                     jobs_failed = w.jobs_failed + d.failed
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
     AS d(organization_id, worker_id, processed, failed)
WHERE w.id = d.worker_id AND w.organization_id = d.organization_id
"""

# (organization_id, worker_id) → [processed, failed], this process only.
_pending: dict[tuple[str, str], list[int]] = {}


def count_after_commit(org_id: str, worker_id: str, processed: int = 0, failed: int = 0) -> None:
    """Count acknowledged jobs once the current transaction commits (dropped on rollback)."""
    if processed or failed:
        after_commit(lambda: _add(org_id, worker_id, processed, failed))


def _add(org_id: str, worker_id: str, processed: int, failed: int) -> None:
    entry = _pending.get((org_id, worker_id))
    if entry is None:
        _pending[(org_id, worker_id)] = [processed, failed]
    else:
        entry[0] += processed
        entry[1] += failed


async def _write(conn: asyncpg.Connection, items: list[tuple[tuple[str, str], list[int]]]) -> None:
    try:
        await conn.execute(
            ADD_COUNTS,
            [k[0] for k, _ in items], [k[1] for k, _ in items],
            [v[0] for _, v in items], [v[1] for _, v in items],
        )
    except BaseException:
        for (org_id, worker_id), (processed, failed) in items:  # keep them for the next flush
            _add(org_id, worker_id, processed, failed)
        raise


async def flush_org(conn: asyncpg.Connection, org_id: str, worker_id: str | None = None) -> None:
    """Write this process's pending counts of one organization (or one worker) now, in the
    caller's transaction (a request bound to that tenant)."""
    keys = [k for k in _pending if k[0] == org_id and (worker_id is None or k[1] == worker_id)]
    if keys:
        await _write(conn, [(k, _pending.pop(k)) for k in keys])


async def flush_all(pool: asyncpg.Pool) -> None:
    """Write every pending count (login role: all organizations)."""
    if not _pending:
        return
    items = list(_pending.items())
    _pending.clear()
    async with pool.acquire() as conn:
        await _write(conn, items)


async def run_flusher(pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Flush every FLUSH_EVERY_SECS until `stop`, then once more."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), FLUSH_EVERY_SECS)
        except TimeoutError:
            pass
        try:
            await flush_all(pool)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried at the next tick
            log.warning("worker counter flush failed", error=str(exc))
