"""What the webhook outbox triggers (migration 0007) add to the job hot path, on an embedded
PostgreSQL: per-statement database time of complete, create and heartbeat, each run as a
request does (BEGIN; bind tenant; statement; COMMIT), in four set-ups measured in the same run:

  off        — the jobs triggers disabled (the cost floor),
  no subs    — triggers on, no outgoing webhook anywhere (the common case),
  other org  — triggers on, another organization subscribes to everything,
  subscribed — triggers on, this organization subscribes to the event (an outbox row is
               written in the statement's transaction: the price of the notification itself).

    python -m bench.outbox_trigger_overhead [--iterations 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from spooled_backend.core import tenancy
from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.migrate import upgrade_to_head
from spooled_backend.db.pool import _init_connection
from spooled_backend.jobs import queries as jq
from spooled_backend.webhooks.rules import EVENTS

ORG, OTHER = "bench-org", "bench-other"
SETUPS = ("off", "no subs", "other org", "subscribed")


async def seed(conn: asyncpg.Connection) -> None:
    for org in (ORG, OTHER):
        await conn.execute(
            "INSERT INTO organizations (id, name, slug, plan_tier) VALUES ($1, $1, $1, 'enterprise')",
            org,
        )


async def configure(conn: asyncpg.Connection, setup: str) -> None:
    await conn.execute("DELETE FROM outgoing_webhooks")
    action = "DISABLE" if setup == "off" else "ENABLE"
    for trigger in ("spooled_outbox_jobs_insert", "spooled_outbox_jobs_update"):
        await conn.execute(f"ALTER TABLE jobs {action} TRIGGER {trigger}")
    if setup in ("other org", "subscribed"):
        org = OTHER if setup == "other org" else ORG
        await conn.execute(
            "INSERT INTO outgoing_webhooks (organization_id, name, url, events) "
            "VALUES ($1, 'b', 'https://example.com/h', $2)", org, list(EVENTS),
        )


async def request(conn: asyncpg.Connection, sql: str, *args: object) -> float:
    start = time.perf_counter()
    async with conn.transaction():
        await tenancy.bind_tenant(conn, ORG, tenancy.TENANT_ROLE)
        await conn.fetch(sql, *args)
    return (time.perf_counter() - start) * 1e6


async def round_for(conn: asyncpg.Connection, setup: str, n: int) -> dict[str, list[float]]:
    await configure(conn, setup)
    out: dict[str, list[float]] = {"create": [], "heartbeat": [], "complete": []}
    for _ in range(n):
        out["create"].append(await request(
            conn, jq.INSERT_JOB, ORG, "bench", {"n": 1}, 0, None, None, None, None, None, None,
            None, None, None, True, 3, 300,
        ))
    claimed: list[tuple[str, str]] = []
    while True:
        rows = await conn.fetch(jq.CLAIM_JOBS, ORG, "bench", 100, "w1", 300.0)
        if not rows:
            break
        claimed += [(r["id"], r["lease_id"]) for r in rows]
    for job_id, lease in claimed:
        out["heartbeat"].append(await request(conn, jq.HEARTBEAT_JOB, job_id, ORG, "w1", lease,
                                              300.0, None))
    for job_id, lease in claimed:
        out["complete"].append(await request(conn, jq.COMPLETE_JOB, job_id, ORG, "w1", lease,
                                             {"ok": True}, None))
    await conn.execute("DELETE FROM outgoing_webhook_deliveries")
    await conn.execute("DELETE FROM job_history")
    await conn.execute("DELETE FROM jobs")
    return out


async def measure(dsn: str, iterations: int, rounds: int = 4) -> dict[str, dict[str, float]]:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    try:
        await seed(conn)
        samples: dict[str, dict[str, list[float]]] = {s: {} for s in SETUPS}
        await round_for(conn, "no subs", 200)  # warm-up
        for _ in range(rounds):  # interleaved, so noise hits every set-up alike
            for setup in SETUPS:
                for op, values in (await round_for(conn, setup, iterations // rounds)).items():
                    samples[setup].setdefault(op, []).extend(values)
        return {s: {op: statistics.median(v) for op, v in ops.items()} for s, ops in samples.items()}
    finally:
        await conn.close()


async def main(iterations: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp), fast_unsafe=True)
        server.start()
        try:
            setup = await asyncpg.connect(server.dsn())
            await setup.execute("CREATE DATABASE bench")
            await setup.close()
            dsn = server.dsn("bench")
            await asyncio.to_thread(upgrade_to_head, dsn)
            result = await measure(dsn, iterations)
        finally:
            server.stop()
    print(f"Request database time, median µs ({iterations} statements per cell, interleaved)\n")
    print(f"| {'statement':<10} | " + " | ".join(f"{s:>10}" for s in SETUPS)
          + " | no subs / off | subscribed / off |")
    print("|" + "|".join("-" * 12 for _ in range(len(SETUPS) + 1)) + "|---------------|"
          "------------------|")
    for op in ("create", "heartbeat", "complete"):
        cells = [result[s][op] for s in SETUPS]
        print(f"| {op:<10} | " + " | ".join(f"{c:>10.0f}" for c in cells)
              + f" | {cells[1] / cells[0]:>13.3f} | {cells[3] / cells[0]:>16.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    asyncio.run(main(parser.parse_args().iterations))
