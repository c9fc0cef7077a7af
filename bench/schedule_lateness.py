"""Cron firing lateness: fire time minus due time, p50/p99, for a growing number of schedules.

    .venv/bin/python bench/schedule_lateness.py [--schedules 1,10,50] [--seconds 20] [--replicas 1]

Starts `spooled-backend serve` as a user would (embedded PostgreSQL in a temporary
SPOOLED_DATA_DIR, no Redis, loopback only, PLAN_LIMITS_ENABLED=false). With `--replicas 2` a
second server joins the same database (DATABASE_URL), so both firing loops compete. For each
count N it creates N schedules firing every second (`* * * * * *`), lets them run
`--seconds`, pauses them, and reads each run's lateness straight from PostgreSQL
(`schedule_runs.started_at - scheduled_for`: the due second, set by the loop in the fire's
transaction). Prints a markdown table. The client shares the 2 cores with the server: figures
are a ceiling, compare them with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e.server import ServerProcess  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", default="1,10,50", help="comma list of schedule counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="run time per count")
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 2))
    return parser.parse_args(argv)


def embedded_port(server: ServerProcess) -> int:
    """The embedded PostgreSQL's port, from line 4 of its postmaster.pid."""
    return int(server.pid_file.read_text().splitlines()[3])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_count(
    http: httpx.AsyncClient, db: asyncpg.Connection, count: int, seconds: float
) -> dict[str, float]:
    ids: list[str] = []
    for i in range(count):
        resp = await http.post("/api/v1/schedules", json={
            "name": f"bench-{count}-{i}", "cron_expression": "* * * * * *",
            "queue_name": "bench", "payload_template": {"i": i},
        })
        resp.raise_for_status()
        ids.append(resp.json()["id"])
    await asyncio.sleep(seconds)
    for sid in ids:
        (await http.post(f"/api/v1/schedules/{sid}/pause")).raise_for_status()
    rows = await db.fetch(
        """SELECT EXTRACT(EPOCH FROM started_at - scheduled_for)::float8 AS late, status
           FROM schedule_runs WHERE schedule_id = ANY($1::text[]) AND scheduled_for IS NOT NULL""",
        ids,
    )
    late = [r["late"] * 1000 for r in rows]
    failed = sum(1 for r in rows if r["status"] != "completed")
    expected = count * seconds
    await db.execute("DELETE FROM jobs WHERE queue_name = 'bench'")
    return {
        "schedules": count, "fires": len(rows), "expected": expected, "failed": failed,
        "p50": statistics.median(late) if late else float("nan"),
        "p99": percentile(late, 99) if late else float("nan"),
        "max": max(late) if late else float("nan"),
    }


async def measure(servers: list[ServerProcess], args: argparse.Namespace) -> list[dict[str, float]]:
    dsn = f"postgresql://postgres@127.0.0.1:{embedded_port(servers[0])}/spooled"
    db = await asyncpg.connect(dsn)
    results = []
    try:
        async with httpx.AsyncClient(base_url=servers[0].base_url, timeout=30) as anon:
            resp = await anon.post("/api/v1/organizations", json={"name": "Bench", "slug": f"bench-{int(time.time())}"})
            resp.raise_for_status()
            key = resp.json()["api_key"]["key"]
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=servers[-1].base_url, headers=headers, timeout=30) as http:
            for count in (int(c) for c in args.schedules.split(",")):
                results.append(await run_count(http, db, count, args.seconds))
    finally:
        await db.close()
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = {"PLAN_LIMITS_ENABLED": "false", "DEFAULT_PLAN_TIER": "enterprise"}
    with tempfile.TemporaryDirectory(prefix="spooled-bench-") as tmp:
        first = ServerProcess(Path(tmp) / "data", env=dict(env))
        first.start()
        servers = [first]
        try:
            if args.replicas == 2:
                dsn = f"postgresql://postgres@127.0.0.1:{embedded_port(first)}/spooled"
                second = ServerProcess(Path(tmp) / "data2", env={**env, "DATABASE_URL": dsn})
                second.start()
                servers.append(second)
            results = asyncio.run(measure(servers, args))
        finally:
            for server in reversed(servers):
                if server.proc is not None:
                    server.stop()
    print(f"\nCron firing lateness (fire time − due time), {args.replicas} server process(es), "
          f"every schedule firing each second for {args.seconds:g} s\n")
    print("| schedules | fires | expected | failed | p50 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['schedules']:.0f} | {r['fires']:.0f} | {r['expected']:.0f} | {r['failed']:.0f} "
              f"| {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |")


if __name__ == "__main__":
    main()
