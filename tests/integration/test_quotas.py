"""Plan quotas (CONTRACT §12.1–12.3, §3.3) enforced on job creation and reported by usage."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from spooled_backend.core.errors import FeatureDisabled, QuotaExceeded
from spooled_backend.organizations import quotas
from tests.conftest import Api, _api, make_settings

JOBS = "/api/v1/jobs"


NO_RATE_LIMIT = {"rate_limit_requests_per_second": 100_000, "rate_limit_burst": 100_000}


async def free_org(api: Api, **custom: int) -> dict[str, Any]:
    """A free-plan org; `custom` limits override the plan. The request rate limit is lifted so
    that only quotas are under test."""
    created = await api.create_org()
    oid = created["organization"]["id"]
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE organizations SET custom_limits = $2 WHERE id = $1",
            oid,
            {**NO_RATE_LIMIT, **custom},
        )
    return {"org_id": oid, "headers": api.as_key(created["api_key"]["key"])}


async def counter(api: Api, oid: str) -> tuple[int, Any]:
    async with api.state.pool.acquire() as c:
        row = await c.fetchrow(
            "SELECT jobs_created_today, last_daily_reset FROM organization_usage "
            "WHERE organization_id = $1",
            oid,
        )
    return int(row["jobs_created_today"]), row["last_daily_reset"]


async def post_job(api: Api, org: dict[str, Any], queue: str = "q1", **extra: Any) -> Any:
    body = {"queue_name": queue, "payload": {"n": 1}, **extra}
    return await api.client.post(JOBS, json=body, headers=org["headers"])


async def test_jobs_per_day_race_is_exact(api: Api) -> None:
    org = await free_org(api, max_jobs_per_day=5)
    results = await asyncio.gather(*(post_job(api, org) for _ in range(20)))
    assert sorted(r.status_code for r in results) == [201] * 5 + [429] * 15
    refused = next(r for r in results if r.status_code == 429)
    assert "retry-after" not in refused.headers
    body = refused.json()
    assert body["code"] == "QUOTA_EXCEEDED" and body["error"] == "limit_exceeded"
    assert body["resource"] == "jobs_per_day" and body["limit"] == 5 and body["current"] == 5
    assert body["message"] == (
        "jobs per day limit reached (5/5). Upgrade to starter for higher limits."
    )
    assert (await counter(api, org["org_id"]))[0] == 5
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval("SELECT count(*) FROM jobs WHERE organization_id = $1", org["org_id"])
            == 5
        )


async def test_idempotent_duplicates_are_refunded_and_replays_answer(api: Api) -> None:
    org = await free_org(api, max_jobs_per_day=3)
    first = await post_job(api, org, idempotency_key="k1")
    assert first.status_code == 201
    for _ in range(3):
        dup = await post_job(api, org, idempotency_key="k1")
        assert dup.status_code == 200 and dup.json() == {"id": first.json()["id"], "created": False}
    assert (await counter(api, org["org_id"]))[0] == 1
    assert (await post_job(api, org)).status_code == 201
    assert (await post_job(api, org)).status_code == 201
    assert (await post_job(api, org)).status_code == 429
    # at the cap, a replay of an existing job still gets its id, a new key does not
    replay = await post_job(api, org, idempotency_key="k1")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert (await post_job(api, org, idempotency_key="k2")).status_code == 429
    assert (await counter(api, org["org_id"]))[0] == 3


async def test_daily_reset_by_utc_date_and_refund_never_crosses_it(api: Api) -> None:
    org = await free_org(api, max_jobs_per_day=2)
    oid = org["org_id"]
    assert (await post_job(api, org)).status_code == 201
    assert (await post_job(api, org)).status_code == 201
    assert (await post_job(api, org)).status_code == 429
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE organization_usage SET last_daily_reset = $2 WHERE organization_id = $1",
            oid,
            yesterday,
        )
    assert (await post_job(api, org)).status_code == 201
    count, day = await counter(api, oid)
    assert count == 1 and day == datetime.now(UTC).date()
    async with api.state.pool.acquire() as c:
        stale = quotas.JobReservation(oid, yesterday, 5)
        await stale.refund(c, 5)
        assert (await counter(api, oid))[0] == 1
        fresh = quotas.JobReservation(oid, day, 5)
        await fresh.refund(c, 5)
        assert (await counter(api, oid))[0] == 0  # never below zero
        assert fresh.reserved == 0


async def test_active_jobs_cap(api: Api) -> None:
    org = await free_org(api)  # free: 10 active jobs
    ids = []
    for _ in range(10):
        resp = await post_job(api, org)
        assert resp.status_code == 201
        ids.append(resp.json()["id"])
    over = await post_job(api, org)
    assert over.status_code == 429
    assert over.json()["resource"] == "active_jobs" and over.json()["current"] == 10
    assert (await api.client.delete(f"{JOBS}/{ids[0]}", headers=org["headers"])).status_code == 204
    assert (await post_job(api, org)).status_code == 201
    assert (await counter(api, org["org_id"]))[0] == 11


async def test_new_queue_cap(api: Api) -> None:
    org = await free_org(api)  # free: 2 queues
    assert (await post_job(api, org, "alpha")).status_code == 201
    assert (await post_job(api, org, "beta")).status_code == 201
    over = await post_job(api, org, "gamma")
    assert over.status_code == 429
    assert over.json()["resource"] == "queues"
    assert (
        over.json()["message"]
        == "queues limit reached (2/2). Upgrade to starter for higher limits."
    )
    assert (await post_job(api, org, "alpha")).status_code == 201  # existing queues never block
    assert (await counter(api, org["org_id"]))[0] == 3  # the refused job was not charged


async def test_new_queue_race(api: Api) -> None:
    org = await free_org(api, max_queues=3, max_active_jobs=100)
    assert (await post_job(api, org, "base")).status_code == 201
    # ten requests into the SAME new queue: all succeed, the queue is charged once
    same = await asyncio.gather(*(post_job(api, org, "shared") for _ in range(10)))
    assert [r.status_code for r in same] == [201] * 10
    # eight requests into eight different new queues with one slot left: exactly one wins
    many = await asyncio.gather(*(post_job(api, org, f"new{i}") for i in range(8)))
    assert sorted(r.status_code for r in many) == [201] + [429] * 7
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval(
                "SELECT count(DISTINCT queue_name) FROM jobs WHERE organization_id = $1",
                org["org_id"],
            )
            == 3
        )


async def test_bulk_is_all_or_nothing(api: Api) -> None:
    org = await free_org(api, max_jobs_per_day=10, max_active_jobs=100)
    url = f"{JOBS}/bulk"
    ok = await api.client.post(
        url,
        json={"queue_name": "q1", "jobs": [{"payload": {"i": i}} for i in range(8)]},
        headers=org["headers"],
    )
    assert ok.status_code == 200 and ok.json()["success_count"] == 8
    too_many = await api.client.post(
        url,
        json={"queue_name": "q1", "jobs": [{"payload": {"i": i}} for i in range(3)]},
        headers=org["headers"],
    )
    assert too_many.status_code == 429 and too_many.json()["resource"] == "jobs_per_day"
    assert too_many.json()["current"] == 8
    assert (await counter(api, org["org_id"]))[0] == 8
    # duplicates (inside the batch and against stored jobs) are not charged
    mixed = await api.client.post(
        url,
        json={
            "queue_name": "q1",
            "jobs": [
                {"payload": 1, "idempotency_key": "a"},
                {"payload": 2, "idempotency_key": "a"},
            ],
        },
        headers=org["headers"],
    )
    assert mixed.status_code == 200 and mixed.json()["success_count"] == 2
    assert (await counter(api, org["org_id"]))[0] == 9
    again = await api.client.post(
        url,
        json={"queue_name": "q1", "jobs": [{"payload": 1, "idempotency_key": "a"}]},
        headers=org["headers"],
    )
    assert again.json()["succeeded"][0]["created"] is False
    assert (await counter(api, org["org_id"]))[0] == 9
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval("SELECT count(*) FROM jobs WHERE organization_id = $1", org["org_id"])
            == 9
        )
    new_queue = await api.client.post(
        url,
        json={"queue_name": "q2", "jobs": [{"payload": 1}]},
        headers=org["headers"],
    )
    assert new_queue.status_code == 200  # second queue of two


async def test_reserve_api(api: Api, conn: asyncpg.Connection) -> None:
    created = await api.create_org()
    oid = created["organization"]["id"]
    plan = await quotas.load_plan(conn, oid)
    assert plan is not None and plan.plan_tier == "free"
    with pytest.raises(RuntimeError):
        await quotas.reserve(conn, api.state.settings, plan, "api_keys", 1)
    async with conn.transaction():
        with pytest.raises(FeatureDisabled) as disabled:
            await quotas.reserve(conn, api.state.settings, plan, "workflows", 1)
    assert disabled.value.status == 403
    assert disabled.value.body() == {
        "error": "feature_disabled",
        "code": "FEATURE_DISABLED",
        "message": "workflows is not available on the Free plan. Upgrade to starter to enable it.",
        "feature": "workflows",
        "plan": "free",
        "upgrade_to": "starter",
    }
    async with conn.transaction():
        await quotas.reserve(conn, api.state.settings, plan, "api_keys", 1)  # 1 of 2 used
        with pytest.raises(QuotaExceeded) as over:
            await quotas.reserve(conn, api.state.settings, plan, "api_keys", 2)
    assert over.value.extra["current"] == 1 and over.value.extra["limit"] == 2
    enterprise = quotas.OrgPlan(oid, "enterprise")
    await quotas.reserve(conn, api.state.settings, enterprise, "workflows", 10_000)
    custom = quotas.OrgPlan(oid, "enterprise", {"max_webhooks": 0})
    async with conn.transaction():
        with pytest.raises(FeatureDisabled) as feature:
            await quotas.reserve(conn, api.state.settings, custom, "webhooks")
    assert "upgrade_to" not in feature.value.extra
    with pytest.raises(ValueError):
        await quotas.reserve(conn, api.state.settings, plan, "jobs_per_day")


async def test_usage_document(api: Api) -> None:
    org = await free_org(api)
    for _ in range(6):
        assert (await post_job(api, org)).status_code == 201
    resp = await api.client.get("/api/v1/organizations/usage", headers=org["headers"])
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["plan"] == "free" and doc["plan_display_name"] == "Free"
    assert doc["limits"]["max_active_jobs"] == 10 and doc["limits"]["tier"] == "free"
    usage = doc["usage"]
    assert set(usage) == {
        "jobs_today",
        "active_jobs",
        "queues",
        "workers",
        "api_keys",
        "schedules",
        "workflows",
        "webhooks",
    }
    assert usage["jobs_today"] == {
        "current": 6,
        "limit": 1000,
        "percentage": 0.6,
        "is_disabled": False,
    }
    assert usage["active_jobs"] == {
        "current": 6,
        "limit": 10,
        "percentage": 60.0,
        "is_disabled": False,
    }
    assert usage["queues"]["current"] == 1 and usage["api_keys"]["current"] == 1
    assert usage["workflows"] == {"current": 0, "limit": 0, "percentage": None, "is_disabled": True}
    by_resource = {w["resource"]: w for w in doc["warnings"]}
    assert by_resource["active_jobs"]["severity"] == "warning"  # free warns at 50 %
    assert by_resource["queues"]["severity"] == "warning"  # 1 of 2
    assert "jobs_per_day" not in by_resource
    for _ in range(4):
        await post_job(api, org)
    doc = (await api.client.get("/api/v1/organizations/usage", headers=org["headers"])).json()
    crit = {w["resource"]: w["severity"] for w in doc["warnings"]}
    assert crit["active_jobs"] == "critical"
    scoped = await api.client.post(
        "/api/v1/api-keys", json={"name": "s", "queues": ["q1"]}, headers=org["headers"]
    )
    sh = api.as_key(scoped.json()["key"])
    assert (await api.client.get("/api/v1/organizations/usage", headers=sh)).status_code == 403


async def test_enterprise_usage_counts_jobs_without_a_hot_counter(
    api: Api, tenant: dict[str, Any]
) -> None:
    for _ in range(3):
        assert (await post_job(api, tenant)).status_code == 201
    doc = (await api.client.get("/api/v1/organizations/usage", headers=tenant["headers"])).json()
    assert doc["usage"]["jobs_today"] == {
        "current": 3,
        "limit": None,
        "percentage": None,
        "is_disabled": False,
    }
    assert doc["warnings"] == []
    assert (await counter(api, tenant["org_id"]))[0] == 0


async def test_plan_limits_disabled(db_url: str) -> None:
    settings = make_settings(db_url, plan_limits_enabled=False)
    async for api in _api(settings, db_url):
        org = await free_org(api)
        for i in range(12):
            assert (await post_job(api, org, f"q{i}")).status_code == 201
        doc = (await api.client.get("/api/v1/organizations/usage", headers=org["headers"])).json()
        assert doc["limits"]["max_jobs_per_day"] is None and doc["limits"]["max_queues"] is None
        assert doc["limits"]["max_payload_size_bytes"] == 65_536
        assert all(v["limit"] is None and v["percentage"] is None for v in doc["usage"].values())
        assert doc["usage"]["active_jobs"]["current"] == 12
        assert json.dumps(doc["warnings"]) == "[]"
        for i in range(3):
            made = await api.client.post(
                "/api/v1/api-keys", json={"name": f"k{i}"}, headers=org["headers"]
            )
            assert made.status_code == 201


async def test_default_plan_tier_setting(db_url: str) -> None:
    settings = make_settings(db_url, default_plan_tier="pro")
    async for api in _api(settings, db_url):
        created = await api.create_org()
        assert created["organization"]["plan_tier"] == "pro"


async def test_retries_count_against_active_jobs(api: Api) -> None:
    """Manual and DLQ retries re-activate jobs, so they are refused past `max_active_jobs`
    (CONTRACT §7.7) and change nothing when refused."""
    org = await free_org(api, max_active_jobs=2)
    h = org["headers"]
    dead = []
    for _ in range(2):
        job_id = (await post_job(api, org, max_retries=0)).json()["id"]
        claim = await api.client.post(
            f"{JOBS}/claim", json={"queue_name": "q1", "worker_id": "w"}, headers=h
        )
        lease = claim.json()["jobs"][0]["lease_id"]
        failed = await api.client.post(
            f"{JOBS}/{job_id}/fail", json={"worker_id": "w", "lease_id": lease, "error": "x"},
            headers=h,
        )
        assert failed.json()["will_retry"] is False
        dead.append(job_id)
    pending = [(await post_job(api, org)).json()["id"] for _ in range(2)]  # active: 2 of 2

    single = await api.client.post(f"{JOBS}/{dead[0]}/retry", headers=h)
    assert single.status_code == 429, single.text
    assert single.json()["code"] == "QUOTA_EXCEEDED" and single.json()["resource"] == "active_jobs"
    bulk = await api.client.post(f"{JOBS}/dlq/retry", json={}, headers=h)
    assert bulk.status_code == 429 and bulk.json()["current"] == 2 and bulk.json()["limit"] == 2
    for job_id in dead:
        assert (await api.client.get(f"{JOBS}/{job_id}", headers=h)).json()["status"] == "deadletter"

    assert (await api.client.delete(f"{JOBS}/{pending[0]}", headers=h)).status_code == 204
    ok = await api.client.post(f"{JOBS}/{dead[0]}/retry", headers=h)  # active: 2 of 2 again
    assert ok.status_code == 200 and ok.json()["status"] == "pending"
    assert (await api.client.post(f"{JOBS}/dlq/retry", json={}, headers=h)).status_code == 429
    assert (await api.client.get(f"{JOBS}/{dead[1]}", headers=h)).json()["status"] == "deadletter"
