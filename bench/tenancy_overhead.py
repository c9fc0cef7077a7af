"""Added per-request cost of row-level security bound per transaction (core/deps.py,
core/tenancy.py), on an embedded PostgreSQL with two organizations of 5 000 jobs each.

Each request shape is timed three ways:
  autocommit  — the statement alone (no request transaction: the old path),
  transaction — BEGIN; statement; COMMIT (the request transaction, login role, no RLS),
  tenant      — BEGIN; set_config(role, org); statement; COMMIT (what an authenticated request does).

    python -m bench.tenancy_overhead [--iterations 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from spooled_backend.core import tenancy

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.pg import migrated_database  # noqa: E402

GET_JOB = "SELECT * FROM jobs WHERE id = $1 AND organization_id = $2"
LIST_JOBS = """
SELECT id, queue_name, status, priority, created_at FROM jobs
WHERE organization_id = $1 AND status = 'pending' ORDER BY created_at DESC LIMIT 50
"""


async def seed(conn: asyncpg.Connection) -> tuple[str, str]:
    for org in ("bench-a", "bench-b"):
        await conn.execute(
            "INSERT INTO organizations (id, name, slug, plan_tier) VALUES ($1, $1, $1, 'enterprise')", org
        )
        await conn.execute(
            "INSERT INTO jobs (organization_id, queue_name, payload) "
            "SELECT $1, 'q' || (g % 10), '{}'::jsonb FROM generate_series(1, 5000) g", org
        )
    await conn.execute("ANALYZE jobs")
    job = await conn.fetchval("SELECT id FROM jobs WHERE organization_id = 'bench-a' LIMIT 1")
    return "bench-a", job


async def timed(fn: Callable[[], Awaitable[object]], iterations: int) -> list[float]:
    for _ in range(200):
        await fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[49]


async def measure(dsn: str, iterations: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        org, job = await seed(conn)
        shapes: dict[str, tuple[str, tuple[object, ...]]] = {
            "get one job": (GET_JOB, (job, org)),
            "list 50 jobs": (LIST_JOBS, (org,)),
        }
        lines = []
        for name, (sql, args) in shapes.items():

            async def autocommit(sql: str = sql, args: tuple[object, ...] = args) -> None:
                await conn.fetch(sql, *args)

            async def transaction(sql: str = sql, args: tuple[object, ...] = args) -> None:
                async with conn.transaction():
                    await conn.fetch(sql, *args)

            async def tenant(sql: str = sql, args: tuple[object, ...] = args) -> None:
                async with conn.transaction():
                    await tenancy.bind_tenant(conn, org, tenancy.TENANT_ROLE)
                    await conn.fetch(sql, *args)

            results = {label: await timed(fn, iterations) for label, fn in
                       (("autocommit", autocommit), ("transaction", transaction), ("tenant", tenant))}
            base, txn, rls = (p50(results[k]) for k in ("autocommit", "transaction", "tenant"))
            lines.append(
                f"| {name:<14} | {base:>10.0f} | {txn:>11.0f} | {rls:>8.0f} | {rls - base:>14.0f} | "
                f"{rls - txn:>13.0f} |"
            )
        return lines
    finally:
        await conn.close()


async def main(iterations: int) -> None:
    async with migrated_database() as dsn:
        rows = await measure(dsn, iterations)
    print(f"Per-request database cost, p50 in microseconds ({iterations} requests each)\n")
    print(f"| {'request':<14} | {'autocommit':>10} | {'transaction':>11} | {'tenant':>8} | "
          f"{'tenant - auto':>14} | {'tenant - txn':>13} |")
    print(f"|{'-' * 16}|{'-' * 12}|{'-' * 13}|{'-' * 10}|{'-' * 16}|{'-' * 15}|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    asyncio.run(main(parser.parse_args().iterations))
