"""`GET /dashboard` (CONTRACT §7.15): shapes, values, organization and queue-scope isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from spooled.types.dashboard import DashboardData

from tests.conftest import Api, _api, make_settings
from tests.integration.jobs_support import (
    RFC3339_Z,
    ack,
    assert_error,
    claim,
    create_job,
    scoped_key,
)
from tests.integration.test_workers import heartbeat, register
from tests.support import free_port

D = "/api/v1/dashboard"


async def populate(api: Api, h: dict[str, str]) -> dict[str, str]:
    """pending ×2 (a), processing ×1 (a), completed ×1 (a), deadletter ×1 (b), scheduled ×1 (b),
    paused queue c with one pending job."""
    ids = {
        "done": await create_job(api, h, queue_name="a"),
        "busy": await create_job(api, h, queue_name="a"),
        "dead": await create_job(api, h, queue_name="b", max_retries=0),
    }
    jobs = {j["id"]: j for j in await claim(api, h, queue="a", limit=2)}
    [dead] = await claim(api, h, queue="b")
    await ack(
        api, h, ids["done"], "complete", worker_id="w1", lease_id=jobs[ids["done"]]["lease_id"]
    )
    await ack(api, h, ids["dead"], "fail", worker_id="w1", lease_id=dead["lease_id"])
    for _ in range(2):
        await create_job(api, h, queue_name="a")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await create_job(api, h, queue_name="b", scheduled_at=later)
    await create_job(api, h, queue_name="c")
    assert (await api.client.post("/api/v1/queues/c/pause", json={}, headers=h)).status_code == 200
    return ids


async def test_shape_and_values(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ids = await populate(api, h)
    async with api.state.pool.acquire() as c:
        await c.execute(
            """UPDATE jobs SET created_at = now() - interval '2 seconds',
                   started_at = now() - interval '1500 milliseconds',
                   completed_at = now() - interval '1 second' WHERE id = $1""",
            ids["done"],
        )
    await register(api, h, worker_id="w-ok", queue_name="a")
    await register(api, h, worker_id="w-meh", queue_name="a")
    await heartbeat(api, h, "w-meh", status="degraded")
    await register(api, h, worker_id="w-off", queue_name="a")
    await api.client.post("/api/v1/workers/w-off/deregister", headers=h)

    resp = await api.client.get(D, headers=h)
    assert resp.status_code == 200
    body = resp.json()
    DashboardData.model_validate(body)  # the SDK's own model accepts it
    system = body["system"]
    assert set(system) == {
        "version",
        "uptime_seconds",
        "started_at",
        "database_status",
        "cache_status",
        "environment",
    }
    assert system["version"] == api.state.version and system["environment"] == "development"
    assert (
        system["database_status"] == "healthy" and system["cache_status"] == "healthy"
    )  # no Redis
    assert isinstance(system["uptime_seconds"], int) and RFC3339_Z.match(system["started_at"])
    jobs = body["jobs"]
    assert {k: v for k, v in jobs.items() if not k.startswith("avg_")} == {
        "total": 7,
        "pending": 3,
        "processing": 1,
        "completed_24h": 1,
        "failed_24h": 1,
        "deadletter": 1,
    }
    assert abs(jobs["avg_processing_time_ms"] - 500.0) < 5.0
    assert jobs["avg_wait_time_ms"] >= 0.0
    assert body["queues"] == [
        {"name": "a", "pending": 2, "processing": 1, "paused": False},
        {"name": "b", "pending": 0, "processing": 0, "paused": False},
        {"name": "c", "pending": 1, "processing": 0, "paused": True},
    ]
    assert body["workers"] == {"total": 2, "healthy": 1, "unhealthy": 1}
    assert body["recent_activity"] == {
        "jobs_created_1h": 7,
        "jobs_completed_1h": 1,
        "jobs_failed_1h": 1,
    }


async def test_empty_organization(api: Api, tenant: dict[str, Any]) -> None:
    body = (await api.client.get(D, headers=tenant["headers"])).json()
    assert body["jobs"] == {
        "total": 0,
        "pending": 0,
        "processing": 0,
        "completed_24h": 0,
        "failed_24h": 0,
        "deadletter": 0,
        "avg_wait_time_ms": None,
        "avg_processing_time_ms": None,
    }
    assert body["queues"] == [] and body["workers"] == {"total": 0, "healthy": 0, "unhealthy": 0}
    assert body["recent_activity"] == {
        "jobs_created_1h": 0,
        "jobs_completed_1h": 0,
        "jobs_failed_1h": 0,
    }


async def test_restricted_to_org_and_queue_scope(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await populate(api, h)
    await register(api, h, worker_id="w-a", queue_name="a")
    await register(api, h, worker_id="w-b", queue_name="b")

    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    theirs = (await api.client.get(D, headers=oh)).json()
    assert (
        theirs["jobs"]["total"] == 0 and theirs["queues"] == [] and theirs["workers"]["total"] == 0
    )
    assert theirs["recent_activity"]["jobs_created_1h"] == 0

    scoped = await scoped_key(api, tenant["org_id"], ["b"])
    mine = (await api.client.get(D, headers=scoped)).json()
    assert (
        mine["jobs"]["total"] == 2
        and mine["jobs"]["deadletter"] == 1
        and mine["jobs"]["pending"] == 0
    )
    assert mine["jobs"]["completed_24h"] == 0 and mine["jobs"]["avg_processing_time_ms"] is None
    assert mine["queues"] == [{"name": "b", "pending": 0, "processing": 0, "paused": False}]
    assert mine["workers"] == {"total": 1, "healthy": 1, "unhealthy": 0}
    assert mine["recent_activity"] == {
        "jobs_created_1h": 2,
        "jobs_completed_1h": 0,
        "jobs_failed_1h": 1,
    }


async def test_cache_status_reflects_redis(db_url: str, redis_server: Any) -> None:
    settings = make_settings(
        db_url,
        redis_url=redis_server.url,
        rust_env="staging",
        jwt_secret="Zq8vT2pLm9Yr4Wx7Nb1Cd6Fg0Hj5Qs3K",
    )
    async for api in _api(settings, db_url):
        created = await api.create_org()
        h = api.as_key(created["api_key"]["key"])
        body = (await api.client.get(D, headers=h)).json()
        assert (
            body["system"]["cache_status"] == "healthy"
            and body["system"]["environment"] == "staging"
        )
        live = api.state.redis
        dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
        api.state.redis = dead  # the cache goes away under the running app
        try:
            body = (await api.client.get(D, headers=h)).json()
        finally:
            api.state.redis = live
            await dead.aclose()
        assert body["system"]["cache_status"] == "unhealthy"


async def test_requires_authentication(api: Api) -> None:
    assert_error(await api.client.get(D), 401, "UNAUTHORIZED")
    assert_error(
        await api.client.get(D, headers=api.as_key("sp_test_" + "x" * 43)), 401, "UNAUTHORIZED"
    )
