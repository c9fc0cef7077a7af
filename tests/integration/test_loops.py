"""Background sweeps (CONTRACT §8.2, §15) and their single-replica guard (advisory lock)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from spooled_backend.db.pool import _init_connection
from spooled_backend.scheduler import recovery
from spooled_backend.scheduler.loops import Loop, Supervisor, lock_key, run_once, supervise
from tests.conftest import Api, _api, make_settings
from tests.integration.jobs_support import claim, create_job, get_job


async def _pool(db_url: str, size: int = 4) -> asyncpg.Pool:
    return await asyncpg.create_pool(db_url, min_size=1, max_size=size, init=_init_connection)


async def test_lease_recovery_retry_vs_deadletter(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    retry = await create_job(api, h, max_retries=3, payload={"r": 1})
    exhausted = await create_job(api, h, max_retries=1, payload={"e": 1})
    alive = await create_job(api, h)
    await claim(api, h, limit=3, worker="wA")
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET retry_count = 2 WHERE id = $1", retry)
        await c.execute("UPDATE jobs SET retry_count = 1 WHERE id = $1", exhausted)
        await c.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = ANY($1::text[])",
                        [retry, exhausted])
        assert await recovery.recover_expired_leases(c) == 2
        row = await c.fetchrow("""SELECT status, retry_count, last_error, lease_id,
                                  EXTRACT(EPOCH FROM scheduled_at - updated_at) AS delay FROM jobs WHERE id = $1""",
                               retry)
        assert dict(row) == {"status": "pending", "retry_count": 3, "last_error": "Lease expired (worker timeout)",
                             "lease_id": None, "delay": 4}
        dead = await c.fetchrow("SELECT status, retry_count, last_error, completed_at FROM jobs WHERE id = $1",
                                exhausted)
        assert (dead["status"], dead["retry_count"]) == ("deadletter", 1)
        assert dead["last_error"] == "Max retries exceeded after lease expiration" and dead["completed_at"]
        audit = await c.fetch("SELECT job_id, reason, original_payload, error_details FROM dead_letter_queue")
        assert [(a["job_id"], a["reason"], a["original_payload"]) for a in audit] == [
            (exhausted, "Max retries exceeded after lease expiration", {"e": 1})]
        assert audit[0]["error_details"] == {"retry_count": 1, "worker_id": "wA"}
        hist = await c.fetch("""SELECT job_id, event_type, worker_id, details FROM job_history
                                WHERE event_type IN ('lease_expired', 'deadlettered') ORDER BY event_type""")
        assert [(r["job_id"], r["event_type"], r["worker_id"]) for r in hist] == [
            (exhausted, "deadlettered", "wA"), (retry, "lease_expired", "wA")]
        assert hist[1]["details"] == {"error": "Lease expired (worker timeout)", "retry_count": 3}
        assert await recovery.recover_expired_leases(c) == 0
    assert (await get_job(api, h, alive))["status"] == "processing"


async def test_recovery_limited_to_one_worker(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    a = await create_job(api, h)
    b = await create_job(api, h)
    await claim(api, h, worker="wA")
    await claim(api, h, worker="wB")
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 s'")
        assert await recovery.recover_expired_leases(c, worker_id="wB") == 1
    assert (await get_job(api, h, a))["status"] == "processing"
    assert (await get_job(api, h, b))["status"] == "pending"


async def test_two_replicas_run_once_only_one_does_the_work(db_url: str) -> None:
    pool_a, pool_b = await _pool(db_url), await _pool(db_url)
    inside, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    def work(name: str) -> Any:
        async def run(conn: asyncpg.Connection) -> None:
            calls.append(name)
            inside.set()
            await release.wait()
        return run

    try:
        first = asyncio.create_task(run_once(pool_a, Loop("lease_recovery", 1, work("a"))))
        await asyncio.wait_for(inside.wait(), 5)
        # replica B, same loop, while A holds the lock: skips
        assert await run_once(pool_b, Loop("lease_recovery", 1, work("b"))) is False
        # a different loop is not blocked
        other_ran: list[int] = []

        async def other(conn: asyncpg.Connection) -> None:
            other_ran.append(1)
        assert await run_once(pool_b, Loop("activate_scheduled", 1, other)) is True
        release.set()
        assert await first is True
        assert calls == ["a"] and other_ran == [1]
        # the lock is transaction-scoped: free again afterwards
        release.set()
        assert await run_once(pool_b, Loop("lease_recovery", 1, work("b"))) is True
        assert calls == ["a", "b"]
    finally:
        await pool_a.close()
        await pool_b.close()
    assert lock_key("lease_recovery") != lock_key("activate_scheduled")
    assert lock_key("x") == lock_key("x") and 0 <= lock_key("x") < 2**32


async def test_concurrent_replicas_recover_each_job_once(api: Api, tenant: dict[str, Any], db_url: str) -> None:
    h = tenant["headers"]
    async with api.state.pool.acquire() as c:
        await c.execute("""INSERT INTO jobs (organization_id, queue_name, payload, status, lease_id,
                                             assigned_worker_id, lease_expires_at)
                           SELECT $1, 'q1', '{}', 'processing', gen_random_uuid()::text, 'w',
                                  now() - interval '1 s' FROM generate_series(1, 300)""", tenant["org_id"])
    pools = [await _pool(db_url) for _ in range(3)]
    counts: list[int] = []

    async def work(conn: asyncpg.Connection) -> None:
        counts.append(await recovery.recover_expired_leases(conn))

    try:
        ran = await asyncio.gather(*(run_once(p, Loop("lease_recovery", 1, work)) for p in pools))
    finally:
        for p in pools:
            await p.close()
    assert sum(counts) == 300 and any(ran)
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs WHERE status = 'pending' AND retry_count = 1") == 300
        assert await c.fetchval("SELECT count(*) FROM job_history WHERE event_type = 'lease_expired'") == 300
    assert (await api.client.get("/api/v1/jobs/stats", headers=h)).json()["pending"] == 300


async def test_supervise_survives_errors_and_stops(db_url: str) -> None:
    pool = await _pool(db_url)
    runs: list[int] = []

    async def flaky(conn: asyncpg.Connection) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database hiccup")
        await conn.execute("SELECT 1")

    stop = asyncio.Event()
    try:
        task = asyncio.create_task(supervise(pool, Loop("flaky", 0.01, flaky), stop))
        deadline = asyncio.get_running_loop().time() + 10
        while len(runs) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2)
        assert len(runs) >= 3

        ticks: list[int] = []

        async def tick(conn: asyncpg.Connection) -> None:
            ticks.append(1)
        sup = Supervisor(pool, [Loop("tick", 0.01, tick)])
        sup.start()
        await asyncio.sleep(0.1)
        await sup.stop(grace_secs=1)
        seen = len(ticks)
        assert seen >= 2
        await asyncio.sleep(0.05)
        assert len(ticks) == seen
    finally:
        await pool.close()


async def test_app_loops_activate_and_recover_on_their_own(db_url: str) -> None:
    settings = make_settings(
        db_url, scheduler_activate_interval_secs=0.05, scheduler_lease_recovery_interval_secs=0.05,
        scheduler_metrics_interval_secs=0.05,
    )
    async for api in _api(settings, db_url, run_loops=True):
        org = await api.create_org()
        h = api.as_key(org["api_key"]["key"])
        sched = await create_job(api, h, scheduled_at="2099-01-01T00:00:00Z")
        leased = await create_job(api, h)
        await claim(api, h)
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE jobs SET scheduled_at = now() WHERE id = $1", sched)
            await c.execute("UPDATE jobs SET lease_expires_at = now() WHERE id = $1", leased)
        for _ in range(300):
            statuses = {(await get_job(api, h, j))["status"] for j in (sched, leased)}
            if statuses == {"pending"}:
                break
            await asyncio.sleep(0.05)
        assert (await get_job(api, h, sched))["status"] == "pending"
        job = await get_job(api, h, leased)
        assert (job["status"], job["retry_count"]) == ("pending", 1)
