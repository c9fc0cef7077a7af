"""Claim latency with and without the per-queue rate limit (queues/ratelimit.py).

Runs against a throwaway embedded PostgreSQL and prints a table of median / p95 latency per
claim (limit 1, one job handed out per call) for:

* `baseline`       – the claim statement as it was before rate limiting existed;
* `baseline, pkey upd` – the same with only the planner fix (UPDATE by primary-key array);
* `no rate_limit`  – today's statement on a queue without a config row;
* `config, no limit` – today's statement on a queue with a config row but `rate_limit` NULL;
* `rate_limit set` – today's statement on a queue limited to 1 000 000 jobs/s (never binding,
  so this measures the cost of the row lock + refill + spend).

    python bench/claim_ratelimit.py [--claims 3000] [--generic]

Never part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.migrate import upgrade_to_head
from spooled_backend.db.pool import _init_connection
from spooled_backend.jobs.queries import CLAIM_JOBS

BASELINE_CLAIM = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE organization_id = $1 AND queue_name = $2
      AND status IN ('pending', 'scheduled') AND dependencies_met
      AND (scheduled_at IS NULL OR scheduled_at <= now())
      AND (expires_at IS NULL OR expires_at > now())
      AND NOT EXISTS (SELECT 1 FROM queue_config q
                      WHERE q.organization_id = $1 AND q.queue_name = $2 AND NOT q.enabled)
    ORDER BY priority DESC, created_at ASC
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs j SET status = 'processing', lease_id = gen_random_uuid()::text,
        assigned_worker_id = $4, lease_expires_at = now() + make_interval(secs => $5),
        started_at = COALESCE(j.started_at, now()), updated_at = now()
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.queue_name, j.payload, j.retry_count, j.max_retries, j.timeout_seconds,
              j.lease_expires_at, j.lease_id, j.priority, j.created_at, j.organization_id,
              j.status, j.result, j.last_error, j.scheduled_at, j.started_at, j.completed_at,
              j.assigned_worker_id, j.idempotency_key
), hist AS (
    INSERT INTO job_history (organization_id, job_id, event_type, worker_id, details)
    SELECT $1, id, 'claimed', $4, jsonb_build_object('lease_id', lease_id, 'attempt', retry_count + 1)
    FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, created_at ASC
"""

# The baseline with only the planner fix this change also made (UPDATE by primary-key array
# instead of a join on `picked`): isolates the cost of the rate-limit CTEs themselves.
BASELINE_PKEY_CLAIM = BASELINE_CLAIM.replace(
    "FROM picked WHERE j.id = picked.id", "WHERE j.id = ANY (ARRAY(SELECT id FROM picked))"
)


async def fill(conn: asyncpg.Connection, org: str, queue: str, n: int) -> None:
    await conn.execute(
        """INSERT INTO jobs (organization_id, queue_name, payload)
           SELECT $1, $2, '{"n": 1}'::jsonb FROM generate_series(1, $3)""",
        org,
        queue,
        n,
    )


async def timed_claim(stmt: asyncpg.prepared_stmt.PreparedStatement, org: str, queue: str) -> float:
    """One claim of one job; returns its latency in microseconds."""
    t0 = time.perf_counter()
    rows = await stmt.fetch(org, queue, 1, "bench-worker", 30.0)
    elapsed = (time.perf_counter() - t0) * 1e6
    assert len(rows) == 1
    return elapsed


async def run(server: EmbeddedPostgres, claims: int, generic: bool) -> None:
    conn = await asyncpg.connect(server.dsn())
    await _init_connection(conn)
    if generic:
        # Without this the baseline's `LIMIT $3` keeps PostgreSQL re-planning it per call.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
    org = await conn.fetchval(
        "INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id"
    )
    await conn.execute(
        "INSERT INTO queue_config (organization_id, queue_name) VALUES ($1, 'cfg')", org
    )
    await conn.execute(
        """INSERT INTO queue_config (organization_id, queue_name, rate_limit)
           VALUES ($1, 'limited', 1000000)""",
        org,
    )
    cases = [
        ("baseline", BASELINE_CLAIM, "base"),
        ("baseline, pkey upd", BASELINE_PKEY_CLAIM, "base2"),
        ("no rate_limit", CLAIM_JOBS, "plain"),
        ("config, no limit", CLAIM_JOBS, "cfg"),
        ("rate_limit set", CLAIM_JOBS, "limited"),
    ]
    for _, _, queue in cases:
        await fill(conn, org, queue, claims + 200)
    await conn.execute("VACUUM ANALYZE jobs")
    results: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    stmts = [(name, await conn.prepare(sql), queue) for name, sql, queue in cases]
    # Interleave single claims so drift (autovacuum, other load) hits every case alike.
    for _ in range(claims):
        for name, stmt, queue in stmts:
            results[name].append(await timed_claim(stmt, org, queue))
    print(f"{'case':<20} {'claims':>7} {'median µs':>10} {'p95 µs':>8}")
    for name, samples in results.items():
        samples.sort()
        p95 = samples[int(len(samples) * 0.95)]
        print(f"{name:<20} {len(samples):>7} {statistics.median(samples):>10.1f} {p95:>8.1f}")
    await conn.close()


def main(claims: int, generic: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp), fast_unsafe=True)
        server.start()
        try:
            upgrade_to_head(server.dsn())  # synchronous: before the event loop runs
            asyncio.run(run(server, claims, generic))
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=3000)
    parser.add_argument("--generic", action="store_true", help="force generic plans for all cases")
    args = parser.parse_args()
    main(args.claims, args.generic)
