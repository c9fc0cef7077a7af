"""The claim under concurrency (CONTRACT §8.2: FOR UPDATE SKIP LOCKED, one statement)."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from spooled_backend.core.context import AuthContext
from spooled_backend.core.events import NoEvents
from spooled_backend.db.pool import _init_connection
from spooled_backend.jobs import service

JOBS = 2000
CLAIMERS = 20
LIMITS = (1, 3, 10, 50, 100)


async def _org(conn: asyncpg.Connection, slug: str) -> AuthContext:
    org_id = await conn.fetchval(
        "INSERT INTO organizations (name, slug, plan_tier) VALUES ($1, $1, 'enterprise') RETURNING id", slug
    )
    return AuthContext(organization_id=org_id, api_key_id="k", plan_tier="enterprise")


async def test_twenty_claimers_hand_out_every_job_exactly_once(
    conn: asyncpg.Connection, db_url: str
) -> None:
    auth = await _org(conn, "claimers")
    other = await _org(conn, "bystander")
    await conn.execute(
        """INSERT INTO jobs (organization_id, queue_name, payload, priority)
           SELECT $1, 'hot', jsonb_build_object('i', i), (i % 7) - 3 FROM generate_series(1, $2) i""",
        auth.organization_id, JOBS,
    )
    # same queue name in another org and another queue in this org: never handed out here
    await conn.execute(
        "INSERT INTO jobs (organization_id, queue_name, payload) SELECT $1, 'hot', '{}' FROM generate_series(1, 50)",
        other.organization_id,
    )
    await conn.execute(
        "INSERT INTO jobs (organization_id, queue_name, payload) SELECT $1, 'cold', '{}' FROM generate_series(1, 50)",
        auth.organization_id,
    )
    all_ids = {r["id"] for r in await conn.fetch(
        "SELECT id FROM jobs WHERE organization_id = $1 AND queue_name = 'hot'", auth.organization_id
    )}
    assert len(all_ids) == JOBS

    pool = await asyncpg.create_pool(db_url, min_size=CLAIMERS, max_size=CLAIMERS, init=_init_connection)
    start = asyncio.Event()
    calls = Counter[str]()

    async def claimer(n: int) -> list[tuple[str, str, str]]:
        worker = f"w{n}"
        got: list[tuple[str, str, str]] = []
        await start.wait()
        async with pool.acquire() as c:
            while True:
                rows = await service.claim_jobs(c, auth, "hot", worker, LIMITS[n % len(LIMITS)], 30, NoEvents())
                calls[worker] += 1
                if not rows:
                    return got
                assert len(rows) <= LIMITS[n % len(LIMITS)]
                got += [(r["id"], r["lease_id"], worker) for r in rows]

    try:
        tasks = [asyncio.create_task(claimer(n)) for n in range(CLAIMERS)]
        await asyncio.sleep(0.05)
        start.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        await pool.close()

    claimed = [item for chunk in results for item in chunk]
    ids = [job_id for job_id, _, _ in claimed]
    assert len(ids) == len(set(ids)) == JOBS, "a job was handed out twice or not at all"
    assert set(ids) == all_ids
    assert len({lease for _, lease, _ in claimed}) == JOBS
    assert sum(1 for chunk in results if chunk) > 1, "claims were not actually concurrent"

    rows = await conn.fetch(
        "SELECT id, status, lease_id, assigned_worker_id FROM jobs WHERE organization_id = $1 AND queue_name = 'hot'",
        auth.organization_id,
    )
    by_id = {job_id: (lease, worker) for job_id, lease, worker in claimed}
    for row in rows:
        assert row["status"] == "processing"
        assert (row["lease_id"], row["assigned_worker_id"]) == by_id[row["id"]]
    assert await conn.fetchval("SELECT count(*) FROM job_history WHERE event_type = 'claimed'") == JOBS
    untouched = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE status = 'pending' AND (organization_id = $1 OR queue_name = 'cold')",
        other.organization_id,
    )
    assert untouched == 100


async def test_claimers_racing_for_a_few_jobs_get_disjoint_sets(conn: asyncpg.Connection, db_url: str) -> None:
    auth = await _org(conn, "racers")
    await conn.execute(
        "INSERT INTO jobs (organization_id, queue_name, payload) SELECT $1, 'q', '{}' FROM generate_series(1, 5)",
        auth.organization_id,
    )
    pool = await asyncpg.create_pool(db_url, min_size=10, max_size=10, init=_init_connection)
    try:
        async def one(n: int) -> list[str]:
            async with pool.acquire() as c:
                return [r["id"] for r in await service.claim_jobs(c, auth, "q", f"w{n}", 5, 30, NoEvents())]

        results = await asyncio.gather(*(one(n) for n in range(10)))
    finally:
        await pool.close()
    flat = [i for r in results for i in r]
    assert len(flat) == len(set(flat)) == 5
