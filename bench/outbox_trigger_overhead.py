"""What the webhook outbox triggers (migration 0007) add to the job hot path, on an embedded
PostgreSQL: database time of create, heartbeat and complete, each run as a request does
(BEGIN; bind tenant; statement; COMMIT), for three variants interleaved statement by statement
(so machine noise hits them alike):

  off        — triggers not fired (a session with `session_replication_role = replica`),
  no subs    — triggers on, this organization has no outgoing webhook (another one subscribes
               to every event: the probe is per organization), no completion webhook,
  subscribed — triggers on, this organization subscribes to every event: an outbox row is
               written in the statement's transaction (the price of the notification itself).

    python -m bench.outbox_trigger_overhead [--iterations 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from contextvars import ContextVar
from pathlib import Path

import asyncpg

from spooled_backend.core import tenancy
from spooled_backend.db.pool import _init_connection
from spooled_backend.jobs import queries as jq
from spooled_backend.webhooks.rules import EVENTS

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.pg import migrated_database  # noqa: E402

VARIANTS = ("off", "no subs", "subscribed")
_label: ContextVar[str] = ContextVar("label", default="")
ORGS = {"off": "org-plain", "no subs": "org-plain", "subscribed": "org-subbed"}


async def seed(conn: asyncpg.Connection) -> None:
    for org in ("org-plain", "org-subbed"):
        await conn.execute(
            "INSERT INTO organizations (id, name, slug, plan_tier) VALUES ($1, $1, $1, 'enterprise')",
            org,
        )
    await conn.execute(
        "INSERT INTO outgoing_webhooks (organization_id, name, url, events) "
        "VALUES ('org-subbed', 'b', 'https://example.com/h', $1)", list(EVENTS),
    )


TRIGGER_TIMES: dict[str, list[float]] = {}


async def request(conn: asyncpg.Connection, org: str, sql: str, *args: object) -> float:
    """Server-side execution time (µs) of the statement in a request-like transaction, from
    EXPLAIN ANALYZE (less exposed to a loaded machine than a client-side clock); the time spent
    in the outbox triggers is collected in TRIGGER_TIMES under the statement's label."""
    async with conn.transaction():
        await tenancy.bind_tenant(conn, org, tenancy.TENANT_ROLE)
        plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
    doc = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    spent = sum(t["Time"] for t in doc.get("Triggers", [])
                if t["Trigger Name"].startswith("spooled_outbox_"))
    TRIGGER_TIMES.setdefault(_label.get(), []).append(spent * 1000)
    return float(doc["Execution Time"]) * 1000


async def one_round(conns: dict[str, asyncpg.Connection], n: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {v: {"create": [], "heartbeat": [], "complete": []}
                                              for v in VARIANTS}
    for _ in range(n):
        for v in VARIANTS:
            _label.set(f"{v}/create")
            out[v]["create"].append(await request(
                conns[v], ORGS[v], jq.INSERT_JOB, ORGS[v], f"bench-{v}", {"n": 1}, 0, None, None,
                None, None, None, None, None, None, None, True, 3, 300,
            ))
    leases: dict[str, list[tuple[str, str]]] = {}
    for v in VARIANTS:
        leases[v] = []
        while rows := await conns[v].fetch(jq.CLAIM_JOBS, ORGS[v], f"bench-{v}", 100, "w1", 300.0):
            leases[v] += [(r["id"], r["lease_id"]) for r in rows]
    for i in range(n):
        for v in VARIANTS:
            job_id, lease = leases[v][i]
            _label.set(f"{v}/heartbeat")
            out[v]["heartbeat"].append(await request(
                conns[v], ORGS[v], jq.HEARTBEAT_JOB, job_id, ORGS[v], "w1", lease, 300.0, None))
    for i in range(n):
        for v in VARIANTS:
            job_id, lease = leases[v][i]
            _label.set(f"{v}/complete")
            out[v]["complete"].append(await request(
                conns[v], ORGS[v], jq.ACK_JOBS, ORGS[v], ["w1"], [job_id], [lease],
                ['{"ok": true}'], ["complete"], [None], None))
    cleanup = conns["off"]
    await cleanup.execute("DELETE FROM outgoing_webhook_deliveries")
    await cleanup.execute("DELETE FROM job_history")
    await cleanup.execute("DELETE FROM jobs")
    return out


async def measure(dsn: str, iterations: int, rounds: int = 6) -> dict[str, dict[str, float]]:
    conns: dict[str, asyncpg.Connection] = {}
    for v in VARIANTS:
        conns[v] = await asyncpg.connect(dsn)
        await _init_connection(conns[v])
    try:
        await seed(conns["off"])
        await conns["off"].execute("SET session_replication_role = replica")
        await one_round(conns, 100)  # warm-up (plans cached)
        samples: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
        for _ in range(rounds):
            for v, ops in (await one_round(conns, iterations // rounds)).items():
                for op, values in ops.items():
                    samples[v].setdefault(op, []).extend(values)
        return {v: {op: statistics.median(x) for op, x in ops.items()} for v, ops in samples.items()}
    finally:
        for c in conns.values():
            await c.close()


async def main(iterations: int) -> None:
    async with migrated_database() as dsn:
        result = await measure(dsn, iterations)
    print(f"Server-side execution time (EXPLAIN ANALYZE), median µs ({iterations} statements per "
          "cell, interleaved statement by statement)\n")
    print(f"| {'statement':<10} | " + " | ".join(f"{v:>10}" for v in VARIANTS)
          + " | no subs / off | subscribed / off |")
    print("|" + "|".join("-" * 12 for _ in range(len(VARIANTS) + 1)) + "|---------------|"
          "------------------|")
    for op in ("create", "heartbeat", "complete"):
        cells = [result[v][op] for v in VARIANTS]
        print(f"| {op:<10} | " + " | ".join(f"{c:>10.0f}" for c in cells)
              + f" | {cells[1] / cells[0]:>13.3f} | {cells[2] / cells[0]:>16.3f} |")
    print("\nOf which inside the outbox trigger functions, median µs:\n")
    print("| statement  |    no subs | subscribed |")
    print("|------------|------------|------------|")
    for op in ("create", "heartbeat", "complete"):
        a = statistics.median(TRIGGER_TIMES[f"no subs/{op}"])
        b = statistics.median(TRIGGER_TIMES[f"subscribed/{op}"])
        print(f"| {op:<10} | {a:>10.1f} | {b:>10.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=3000)
    asyncio.run(main(parser.parse_args().iterations))
