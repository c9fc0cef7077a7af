"""Worker liveness by missed heartbeats: healthy → degraded → offline, and recovery of an
offline worker's jobs (CONTRACT §9.2, §8.2), as a sweep and as the supervised loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio

from spooled_backend.scheduler.loops import default_loops
from spooled_backend.workers.liveness import degraded_after_secs, sweep_workers
from tests.conftest import Api, _api, make_settings
from tests.integration.jobs_support import ack, claim, create_job, get_job
from tests.integration.test_workers import heartbeat, register, worker_row


async def stale(api: Api, worker_id: str, seconds: float) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE workers SET last_heartbeat = now() - make_interval(secs => $2) WHERE id = $1",
            worker_id,
            seconds,
        )


async def sweep(api: Api) -> tuple[int, int, int]:
    async with api.state.pool.acquire() as c, c.transaction():
        return await sweep_workers(c, api.state.settings)


async def test_default_thresholds_and_loop_registration(api: Api) -> None:
    settings = api.state.settings
    assert degraded_after_secs(settings) == 30.0  # 3 missed 10 s heartbeats
    assert settings.worker_offline_after_secs == 120.0  # CONTRACT §9.2: 2 minutes
    loops = {loop.name: loop for loop in default_loops(api.state)}
    assert (
        loops["worker_liveness"].interval_secs
        == settings.scheduler_worker_liveness_interval_secs
        == 15.0
    )


async def test_healthy_to_degraded_to_offline(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    for wid in ("fresh", "late", "gone", "drainer", "already-off"):
        await register(api, h, worker_id=wid)
    await heartbeat(api, h, "drainer", status="draining")
    await api.client.post("/api/v1/workers/already-off/deregister", headers=h)
    await stale(api, "late", 31)
    await stale(api, "gone", 121)
    await stale(api, "drainer", 125)
    await stale(api, "already-off", 500)
    assert await sweep(api) == (1, 2, 0)
    statuses = {
        w: (await worker_row(api, w))["status"]
        for w in ("fresh", "late", "gone", "drainer", "already-off")
    }
    assert statuses == {
        "fresh": "healthy",
        "late": "degraded",
        "gone": "offline",
        "drainer": "offline",
        "already-off": "offline",
    }
    assert await sweep(api) == (0, 0, 0)  # idempotent
    # a heartbeat brings them back
    await heartbeat(api, h, "late")
    await heartbeat(api, h, "gone", current_jobs=1)
    assert (await worker_row(api, "late"))["status"] == "healthy"
    assert (await worker_row(api, "gone"))["status"] == "healthy"


async def test_offline_workers_jobs_are_recovered_without_waiting_for_leases(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="dead")
    await register(api, h, worker_id="alive")
    retry_id = await create_job(api, h, max_retries=2)
    dlq_id = await create_job(api, h, max_retries=0)
    alive_id = await create_job(api, h)
    await claim(api, h, worker="dead", limit=2, lease=3600)  # leases far from expiring
    [alive_job] = await claim(api, h, worker="alive", lease=3600)
    await stale(api, "dead", 150)
    assert await sweep(api) == (0, 1, 2)

    retried = await get_job(api, h, retry_id)
    assert (retried["status"], retried["retry_count"], retried["last_error"]) == (
        "pending",
        1,
        "Worker went offline",
    )
    assert retried["lease_id"] is None and retried["lease_expires_at"] is None
    assert datetime.fromisoformat(retried["scheduled_at"]) > datetime.now(UTC)  # backoff
    dead = await get_job(api, h, dlq_id)
    assert (dead["status"], dead["last_error"]) == (
        "deadletter",
        "Max retries exceeded after worker went offline",
    )
    async with api.state.pool.acquire() as c:
        audit = await c.fetchrow(
            "SELECT reason, queue_name FROM dead_letter_queue WHERE job_id = $1", dlq_id
        )
        events = [
            r["event_type"]
            for r in await c.fetch(
                "SELECT event_type FROM job_history WHERE job_id = $1 ORDER BY created_at", retry_id
            )
        ]
    assert dict(audit) == {
        "reason": "Max retries exceeded after worker went offline",
        "queue_name": "q1",
    }
    assert events == ["created", "claimed", "worker_offline"]
    assert (await get_job(api, h, alive_id))["status"] == "processing"
    done = await ack(
        api, h, alive_id, "complete", worker_id="alive", lease_id=alive_job["lease_id"]
    )
    assert done.status_code == 200
    # the dead worker's late acknowledgement is refused as a lost lease
    late = await ack(api, h, retry_id, "complete", worker_id="dead", lease_id="whatever")
    assert late.status_code == 409 and late.json()["code"] == "LEASE_EXPIRED"


async def test_sweep_only_recovers_the_offline_workers_own_org(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="twin")
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    their_job = await create_job(api, oh)
    await claim(api, oh, worker="twin", lease=3600)  # same worker name, other organization
    our_job = await create_job(api, h)
    await claim(api, h, worker="twin", lease=3600)
    await stale(api, "twin", 200)
    assert await sweep(api) == (0, 1, 1)
    assert (await get_job(api, h, our_job))["status"] == "pending"
    assert (await get_job(api, oh, their_job))["status"] == "processing"


@pytest_asyncio.fixture
async def looping_api(db_url: str) -> AsyncIterator[Api]:
    """The app with its background loops running on short intervals."""
    settings = make_settings(
        db_url,
        scheduler_worker_liveness_interval_secs=0.1,
        worker_heartbeat_interval_secs=1,
        worker_degraded_after_missed_heartbeats=2,
        worker_offline_after_secs=4.0,
    )
    async for item in _api(settings, db_url, run_loops=True):
        yield item


async def wait_for_status(api: Api, worker_id: str, status: str, timeout: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (await worker_row(api, worker_id))["status"] != status:
        assert loop.time() - start < timeout, f"{worker_id} never became {status}"
        await asyncio.sleep(0.05)
    return loop.time() - start


async def test_supervised_loop_takes_a_silent_worker_offline(looping_api: Api) -> None:
    api = looping_api
    created = await api.create_org()
    h = api.as_key(created["api_key"]["key"])
    await register(api, h, worker_id="silent")
    job_id = await create_job(api, h)
    await claim(api, h, worker="silent", lease=3600)
    to_degraded = await wait_for_status(api, "silent", "degraded")
    assert 1.5 <= to_degraded <= 4.0  # 2 missed 1 s heartbeats (+ one sweep interval)
    await wait_for_status(api, "silent", "offline")
    for _ in range(100):
        job = await get_job(api, h, job_id)
        if job["status"] == "pending":
            break
        await asyncio.sleep(0.05)
    assert (job["status"], job["last_error"]) == ("pending", "Worker went offline")
