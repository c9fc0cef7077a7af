"""Per-queue claim rate limit (`queue_config.rate_limit`, jobs/second) enforced in PostgreSQL
across replicas (queues/ratelimit.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from spooled_backend.config import Settings
from spooled_backend.queues.ratelimit import max_handed_out
from tests.conftest import Api, _api
from tests.integration.jobs_support import claim

Q = "/api/v1/queues"


@pytest_asyncio.fixture
async def second_api(settings: Settings, db_url: str) -> AsyncIterator[Api]:
    """A second, independent app instance (own pool, own caches) on the same database."""
    async for item in _api(settings, db_url):
        yield item


async def fill(api: Api, org_id: str, queue: str, n: int) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            """INSERT INTO jobs (organization_id, queue_name, payload)
               SELECT $1, $2, jsonb_build_object('i', i) FROM generate_series(1, $3) i""",
            org_id,
            queue,
            n,
        )


async def set_limit(api: Api, h: dict[str, str], queue: str, rate: int | None) -> None:
    resp = await api.client.put(f"{Q}/{queue}/config", json={"rate_limit": rate}, headers=h)
    assert resp.status_code == 200, resp.text


async def age_bucket(api: Api, org_id: str, queue: str, tokens: float, seconds_ago: float) -> None:
    """Put the bucket in a known state: `tokens` left, last refilled `seconds_ago`."""
    async with api.state.pool.acquire() as c:
        await c.execute(
            """UPDATE queue_config SET rate_tokens = $3,
                   rate_refilled_at = clock_timestamp() - make_interval(secs => $4)
               WHERE organization_id = $1 AND queue_name = $2""",
            org_id,
            queue,
            tokens,
            seconds_ago,
        )


async def test_burst_then_refill_at_the_configured_rate(api: Api, tenant: dict[str, Any]) -> None:
    h, org = tenant["headers"], tenant["org_id"]
    await fill(api, org, "rl", 100)
    await set_limit(api, h, "rl", 5)
    assert len(await claim(api, h, queue="rl", limit=100)) == 5  # a full bucket = 1 s of jobs
    assert await claim(api, h, queue="rl", limit=100) == []
    await age_bucket(api, org, "rl", 0.0, 0.5)  # half a second → 2.5 tokens
    assert len(await claim(api, h, queue="rl", limit=100)) == 2
    await age_bucket(api, org, "rl", 0.0, 60.0)  # refill never exceeds the burst
    assert len(await claim(api, h, queue="rl", limit=100)) == 5
    await age_bucket(api, org, "rl", 4.0, 0.0)
    assert len(await claim(api, h, queue="rl", limit=3)) == 3  # the requested limit still caps
    assert len(await claim(api, h, queue="rl", limit=3)) == 1
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs WHERE status = 'processing'") == 16


async def test_idle_polls_and_paused_queue_spend_no_tokens(
    api: Api, tenant: dict[str, Any]
) -> None:
    h, org = tenant["headers"], tenant["org_id"]
    await set_limit(api, h, "idle", 4)
    for _ in range(10):
        assert await claim(api, h, queue="idle", limit=10) == []
    await fill(api, org, "idle", 20)
    assert (await api.client.post(f"{Q}/idle/pause", json={}, headers=h)).status_code == 200
    for _ in range(5):
        assert await claim(api, h, queue="idle", limit=10) == []
    assert (await api.client.post(f"{Q}/idle/resume", headers=h)).status_code == 200
    assert len(await claim(api, h, queue="idle", limit=10)) == 4


async def test_changing_or_removing_the_limit(api: Api, tenant: dict[str, Any]) -> None:
    h, org = tenant["headers"], tenant["org_id"]
    await fill(api, org, "chg", 200)
    await set_limit(api, h, "chg", 2)
    assert len(await claim(api, h, queue="chg", limit=50)) == 2
    await set_limit(api, h, "chg", 7)  # a new rate starts with a full bucket of the new size
    assert len(await claim(api, h, queue="chg", limit=50)) == 7
    assert await claim(api, h, queue="chg", limit=50) == []
    other = await api.client.put(f"{Q}/chg/config", json={"max_retries": 4}, headers=h)
    assert other.json()["rate_limit"] == 7
    # Unrelated edits keep the bucket: not a fresh one of 7 (under load, the 1/7 s that passed
    # may have refilled a token; that flaked as `== []`).
    assert len(await claim(api, h, queue="chg", limit=50)) <= 2
    await set_limit(api, h, "chg", None)
    assert len(await claim(api, h, queue="chg", limit=50)) == 50
    async with api.state.pool.acquire() as c:
        row = await c.fetchrow(
            "SELECT rate_tokens, rate_refilled_at FROM queue_config WHERE queue_name = 'chg'"
        )
    assert row["rate_tokens"] is None and row["rate_refilled_at"] is None


async def test_unlimited_queue_and_other_queues_are_not_throttled(
    api: Api, tenant: dict[str, Any]
) -> None:
    h, org = tenant["headers"], tenant["org_id"]
    await fill(api, org, "free-flow", 150)
    await fill(api, org, "slow", 10)
    await set_limit(api, h, "slow", 1)
    assert len(await claim(api, h, queue="free-flow", limit=100)) == 100
    assert len(await claim(api, h, queue="free-flow", limit=100)) == 50
    assert len(await claim(api, h, queue="slow", limit=100)) == 1


async def hammer(client: httpx.AsyncClient, h: dict[str, str], stop_at: float, worker: str) -> int:
    got = 0
    while time.monotonic() < stop_at:
        resp = await client.post(
            "/api/v1/jobs/claim",
            json={"queue_name": "shared", "worker_id": worker, "limit": 10},
            headers=h,
        )
        assert resp.status_code == 200, resp.text
        got += len(resp.json()["jobs"])
    return got


async def test_two_app_instances_together_never_exceed_the_rate(
    api: Api, second_api: Api, tenant: dict[str, Any]
) -> None:
    h, org = tenant["headers"], tenant["org_id"]
    rate = 20
    await fill(api, org, "shared", 2000)
    await set_limit(api, h, "shared", rate)
    duration = 2.0
    start = time.monotonic()
    stop_at = start + duration
    tasks = [
        hammer(app.client, h, stop_at, f"{name}-{i}")
        for name, app in (("a", api), ("b", second_api))
        for i in range(4)
    ]
    counts = await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    total = sum(counts)
    async with api.state.pool.acquire() as c:
        processing = await c.fetchval("SELECT count(*) FROM jobs WHERE status = 'processing'")
    assert processing == total
    assert total <= max_handed_out(rate, elapsed), (total, elapsed)
    # both instances were served, and the limit did not starve the queue either
    per_app = (sum(counts[:4]), sum(counts[4:]))
    assert min(per_app) > 0, per_app
    assert total >= rate * duration * 0.6, (total, elapsed)
