"""hotpath: write amplification of one job's life, measured on our own statements.

    .venv/bin/python bench/profile_writes.py [--jobs 5000] [--retained 0] [--heartbeats 1]

Fresh embedded PostgreSQL, schema migrated to head, one organization. Runs the service's SQL
(jobs/queries.py: INSERT_JOBS_MANY, CLAIM_JOBS, HEARTBEAT_JOB, ACK_JOBS) for `--jobs` jobs
and prints, per job: WAL bytes, heap tuples updated and how many were HOT, index entries
inserted (from pg_stat_user_indexes is not available, so the index count of `jobs` and the
size growth of every index), and claim latency (p50 over 100-job claims). `--retained N` first
inserts N completed jobs (the claim-as-history-grows question, issue 8 point 7).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402

from bench.pg import migrated_database  # noqa: E402
from spooled_backend.db.pool import _init_connection  # noqa: E402
from spooled_backend.jobs import queries as q  # noqa: E402
from spooled_backend.jobs.service import NewJob, insert_arguments  # noqa: E402

ORG = "00000000-0000-4000-8000-000000000001"



def _insert(n: int) -> tuple[Any, ...]:
    """INSERT_JOBS_MANY's parameters for `n` no-op jobs of queue "bench"."""
    return insert_arguments(ORG, [NewJob("bench", {"i": i}) for i in range(n)],
                            [str(uuid.uuid4()) for _ in range(n)], 3, 300)


def complete_args(job: Any) -> tuple[Any, ...]:
    """ACK_JOBS parameters completing one claimed job (what a single complete runs)."""
    return (ORG, ["w1"], [job["id"]], [job["lease_id"]], [None], ["complete"], [None], None)

async def lsn(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


async def stats(conn: asyncpg.Connection) -> tuple[int, int]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    row = await conn.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'"
    )
    return int(row[0]), int(row[1])


async def index_sizes(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid) AS size "
        "FROM pg_index WHERE indrelid = 'jobs'::regclass"
    )
    return {r["name"]: int(r["size"]) for r in rows}


async def retain(conn: asyncpg.Connection, n: int) -> None:
    """`n` finished jobs (completed), as history left by earlier drains."""
    step = 100_000
    for start in range(0, n, step):
        count = min(step, n - start)
        await conn.execute(
            """
            INSERT INTO jobs (organization_id, queue_name, status, payload, max_retries,
                              timeout_seconds, completed_at, started_at)
            SELECT $1, 'bench', 'completed', '{}'::jsonb, 3, 300, now(), now()
            FROM generate_series(1, $2)
            """,
            ORG, count,
        )
    await conn.execute("VACUUM ANALYZE jobs")


async def run(dsn: str, args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    await conn.execute(
        "INSERT INTO organizations (id, name, slug, plan_tier) VALUES ($1, 'b', 'b', 'enterprise')",
        ORG,
    )
    if args.retained:
        t0 = time.perf_counter()
        await retain(conn, args.retained)
        print(f"retained {args.retained} completed jobs in {time.perf_counter() - t0:.1f}s")
    print(f"indexes on jobs: {len(await index_sizes(conn))}")
    sizes0 = await index_sizes(conn)
    wal0, (upd0, hot0) = await lsn(conn), await stats(conn)
    if args.explain:
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q.INSERT_JOBS_MANY, *_insert(100))
        print("\n".join(r[0] for r in plan))
    for start in range(0, args.jobs, 100):
        n = min(100, args.jobs - start)
        await conn.fetch(q.INSERT_JOBS_MANY, *_insert(n))
    wal1, (upd1, hot1) = await lsn(conn), await stats(conn)
    claim_ms: list[float] = []
    claimed: list[asyncpg.Record] = []
    if args.explain:
        await conn.execute("ANALYZE jobs")
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q.CLAIM_JOBS,
                                ORG, "bench", 100, "w1", 300.0)
        print("\n".join(r[0] for r in plan))
        await conn.execute("UPDATE jobs SET status = 'pending' WHERE status = 'processing'")
    while True:
        t0 = time.perf_counter()
        rows = await conn.fetch(q.CLAIM_JOBS, ORG, "bench", 100, "w1", 300.0)
        claim_ms.append((time.perf_counter() - t0) * 1000)
        if not rows:
            break
        claimed.extend(rows)
    wal2, (upd2, hot2) = await lsn(conn), await stats(conn)
    for _ in range(args.heartbeats):
        for job in claimed:
            await conn.fetchrow(q.HEARTBEAT_JOB, job["id"], ORG, "w1", job["lease_id"], 300.0, None)
    wal3, (upd3, hot3) = await lsn(conn), await stats(conn)
    if args.explain:
        job = claimed.pop()
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q.ACK_JOBS,
                                *complete_args(job))
        print("\n".join(r[0] for r in plan))
    t0 = time.perf_counter()
    for job in claimed:
        await conn.fetch(q.ACK_JOBS, *complete_args(job))
    complete_secs = time.perf_counter() - t0
    wal4, (upd4, hot4) = await lsn(conn), await stats(conn)
    sizes1 = await index_sizes(conn)
    n = len(claimed)

    def line(name: str, wal: int, upd: int, hot: int) -> str:
        pct = 100 * hot / upd if upd else 0.0
        return f"| {name} | {wal / n:,.0f} | {upd / n:.2f} | {pct:.0f} % |"

    print("| step | WAL bytes/job | heap updates/job | HOT |")
    print("|---|---|---|---|")
    print(line("enqueue (bulk 100)", wal1 - wal0, upd1 - upd0, hot1 - hot0))
    print(line("claim (100)", wal2 - wal1, upd2 - upd1, hot2 - hot1))
    print(line(f"heartbeat x{args.heartbeats}", wal3 - wal2, upd3 - upd2, hot3 - hot2))
    print(line("complete", wal4 - wal3, upd4 - upd3, hot4 - hot3))
    print(f"claim p50 {statistics.median(claim_ms):.2f} ms (100 jobs), complete "
          f"{complete_secs / n * 1e6:.0f} µs/job sequential")
    grown = {k: sizes1[k] - sizes0.get(k, 0) for k in sizes1}
    print("index growth (bytes/job): " + ", ".join(
        f"{k}={v / n:.0f}" for k, v in sorted(grown.items(), key=lambda kv: -kv[1]) if v))
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--retained", type=int, default=0)
    parser.add_argument("--heartbeats", type=int, default=1)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    async def measure() -> None:
        async with migrated_database() as dsn:
            await run(dsn, args)

    asyncio.run(measure())


if __name__ == "__main__":
    main()
