"""Rate limits (CONTRACT §12.4, §2 headers, §3.3 body) through the app, with and without Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from spooled_backend.config import Settings
from tests.conftest import Api, make_settings
from tests.integration.auth_support import bearer, enterprise_org, fresh_ip, instance
from tests.support import RedisServer

JOBS = "/api/v1/jobs"
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-scope")


async def free_org(api: Api, **custom: Any) -> dict[str, Any]:
    created = await api.create_org()
    org_id = created["organization"]["id"]
    if custom:
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE organizations SET custom_limits = $2 WHERE id = $1", org_id, custom)
    return {"org_id": org_id, "key": created["api_key"]["key"], "key_id": created["api_key"]["id"]}


def limit_headers(resp: Any) -> dict[str, str]:
    return {h: resp.headers[h] for h in HEADERS}


def assert_429(resp: Any, scope: str, limit: int) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["code"] == "RATE_LIMIT_EXCEEDED" and body["error"] == "Rate limit exceeded"
    retry = int(resp.headers["retry-after"])
    assert 1 <= retry <= 60
    assert body["retry_after_secs"] == retry and body["limit"] == limit and body["remaining"] == 0
    assert isinstance(body["reset_at"], int)
    assert resp.headers["x-ratelimit-scope"] == scope
    assert resp.headers["x-ratelimit-limit"] == str(limit)
    assert resp.headers["x-ratelimit-remaining"] == "0"


async def count_jobs(api: Api, org_id: str) -> int:
    async with api.state.pool.acquire() as c:
        return int(await c.fetchval("SELECT count(*) FROM jobs WHERE organization_id = $1", org_id))


async def test_headers_on_every_protected_response(api: Api) -> None:
    org = await enterprise_org(api)
    first = await api.client.get(JOBS, headers=bearer(org["key"]))
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "1000"  # enterprise burst
    assert int(first.headers["x-ratelimit-remaining"]) == 999
    assert first.headers["x-ratelimit-scope"] == "organization"
    # a slowly refilling bucket shows the countdown
    slow = await free_org(api, rate_limit_requests_per_second=1, rate_limit_burst=100)
    h = bearer(slow["key"])
    seen = [limit_headers(await api.client.get(JOBS, headers=h)) for _ in range(3)]
    assert [s["x-ratelimit-limit"] for s in seen] == ["100"] * 3
    remaining = [int(s["x-ratelimit-remaining"]) for s in seen]
    assert remaining[0] == 99 and remaining[0] >= remaining[1] >= remaining[2] and remaining[2] <= 98
    now = time.time()
    for s in seen:
        # integer Unix seconds: when the bucket is full again (≤ 3 s here)
        assert s["x-ratelimit-reset"].isdigit() and now - 1 <= int(s["x-ratelimit-reset"]) <= now + 4
    # errors of protected routes carry them too (the request was counted)
    missing = await api.client.get(f"{JOBS}/00000000-0000-4000-8000-000000000000", headers=h)
    assert missing.status_code == 404 and "x-ratelimit-remaining" in missing.headers
    # the free plan's numbers
    free = await free_org(api)
    resp = await api.client.get(JOBS, headers=bearer(free["key"]))
    assert resp.headers["x-ratelimit-limit"] == "10" and resp.headers["x-ratelimit-remaining"] == "9"


async def test_429_means_nothing_was_done(api: Api) -> None:
    org = await free_org(api, rate_limit_requests_per_second=1, rate_limit_burst=5)
    h = bearer(org["key"])
    statuses = []
    for i in range(12):
        resp = await api.client.post(JOBS, json={"queue_name": "q", "payload": {"i": i}}, headers=h)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert_429(resp, "organization", 5)
    assert statuses[:5] == [201] * 5 and 429 in statuses[5:]
    assert set(statuses) == {201, 429}
    assert await count_jobs(api, org["org_id"]) == statuses.count(201)


async def test_api_key_override_per_minute(api: Api) -> None:
    org = await enterprise_org(api)
    created = await api.client.post("/api/v1/api-keys", json={"name": "slow", "rate_limit": 3},
                                    headers=bearer(org["key"]))
    assert created.status_code == 201, created.text
    h = bearer(created.json()["key"])
    results = [await api.client.get(JOBS, headers=h) for _ in range(4)]
    assert [r.status_code for r in results] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in results[:3]] == ["2", "1", "0"]
    assert results[0].headers["x-ratelimit-scope"] == "api_key"
    assert_429(results[3], "api_key", 3)
    assert 50 <= int(results[3].headers["retry-after"]) <= 60
    # the organization's other key is not affected
    assert (await api.client.get(JOBS, headers=bearer(org["key"]))).status_code == 200


async def test_plan_limits_disabled_switches_org_limits_off(db_url: str) -> None:
    async with instance(make_settings(db_url, plan_limits_enabled=False), db_url) as api:
        org = await free_org(api)
        h = bearer(org["key"])
        for _ in range(25):
            resp = await api.client.get(JOBS, headers=h)
            assert resp.status_code == 200
            assert "x-ratelimit-limit" not in resp.headers


async def test_custom_limits_override_the_plan(api: Api) -> None:
    org = await free_org(api, rate_limit_requests_per_second=1, rate_limit_burst=2)
    h = bearer(org["key"])
    results = [await api.client.get(JOBS, headers=h) for _ in range(3)]
    assert [r.status_code for r in results] == [200, 200, 429]
    assert_429(results[2], "organization", 2)


async def test_public_routes_per_ip(db_url: str) -> None:
    settings = make_settings(db_url, rate_limit_requests_per_second=1, rate_limit_burst_size=3)
    async with instance(settings, db_url) as api:
        ip = {"X-Real-IP": "192.0.2.10"}
        body = {"token": "whatever"}
        results = [await api.client.post("/api/v1/auth/validate", json=body, headers=ip) for _ in range(4)]
        assert [r.status_code for r in results] == [200, 200, 200, 429]
        assert results[0].headers["x-ratelimit-scope"] == "ip"
        assert results[0].headers["x-ratelimit-limit"] == "3"
        assert_429(results[3], "ip", 3)
        # another client address has its own bucket; X-Forwarded-For is read from the right
        other = await api.client.post("/api/v1/auth/validate", json=body,
                                      headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
        assert other.status_code == 200
        # protected routes are not charged to the IP bucket
        org = await enterprise_org(api)
        for _ in range(5):
            resp = await api.client.get(JOBS, headers={**bearer(org["key"]), **ip})
            assert resp.status_code == 200 and resp.headers["x-ratelimit-scope"] == "organization"


async def test_admin_routes_per_ip(api: Api) -> None:
    ip = {"X-Real-IP": "192.0.2.77", "X-Admin-Key": "admin-test-key-0123456789"}
    statuses = [(await api.client.get("/api/v1/admin/plans", headers=ip)).status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60 and statuses[60] == 429
    last = await api.client.get("/api/v1/admin/plans", headers=ip)
    assert_429(last, "ip", 60)


async def test_login_per_submitted_key(api: Api) -> None:
    org = await enterprise_org(api)
    results = [
        await api.client.post("/api/v1/auth/login", json={"api_key": org["key"]}, headers=fresh_ip())
        for _ in range(6)
    ]
    assert [r.status_code for r in results] == [200] * 5 + [429]
    assert [r.headers["x-ratelimit-remaining"] for r in results[:5]] == ["4", "3", "2", "1", "0"]
    assert results[0].headers["x-ratelimit-scope"] == "login"
    denied = results[5].json()
    assert denied["code"] == "RATE_LIMIT_EXCEEDED" and denied["error"] == "rate_limit_exceeded"
    assert int(results[5].headers["retry-after"]) >= 1
    # wrong keys are counted per submitted value, not per organization
    other = await api.client.post("/api/v1/auth/login", json={"api_key": org["key"] + "x"},
                                  headers=fresh_ip())
    assert other.status_code == 401


async def test_check_email_per_ip(api: Api) -> None:
    ip = {"X-Real-IP": "192.0.2.99"}
    statuses = [
        (await api.client.get("/api/v1/auth/check-email", params={"email": f"a{i}@example.com"},
                              headers=ip)).status_code
        for i in range(11)
    ]
    assert statuses == [200] * 10 + [429]


@pytest.fixture
def redis_settings(db_url: str, redis_server: RedisServer) -> Settings:
    return make_settings(db_url, redis_url=redis_server.url)


async def test_limits_are_shared_by_replicas_through_redis(redis_settings: Settings, db_url: str) -> None:
    async with instance(redis_settings, db_url) as a, instance(redis_settings, db_url) as b:
        assert a.state.rate_limiter is not None and a.state.rate_limiter.mode == "redis"
        org = await free_org(a)
        h = bearer(org["key"])
        # Warm both replicas first (key verification, caches), so the burst below is not spread
        # over the first requests' start-up time; then a fresh 1 req/s bucket of 6.
        for replica in (a, b):
            assert (await replica.client.get(JOBS, headers=h)).status_code == 200
        async with a.state.pool.acquire() as c:
            await c.execute(
                "UPDATE organizations SET custom_limits = $2 WHERE id = $1",
                org["org_id"], {"rate_limit_requests_per_second": 1, "rate_limit_burst": 6},
            )
        assert a.state.redis is not None
        await a.state.redis.delete(f"rate_limit:org:{org['org_id']}")
        statuses = []
        started = time.monotonic()
        for i in range(8):
            replica = a if i % 2 == 0 else b
            statuses.append((await replica.client.get(JOBS, headers=h)).status_code)
        elapsed = time.monotonic() - started
        # One bucket shared by both replicas: the burst of 6, then at most one more request per
        # second elapsed (separate buckets would have let all 8 through).
        assert statuses[:6] == [200] * 6
        assert statuses.count(200) <= 6 + int(elapsed), (statuses, elapsed)
        if elapsed < 1.0:
            assert statuses[6:] == [429, 429]
        assert a.state.redis is not None
        assert await a.state.redis.exists(f"rate_limit:org:{org['org_id']}") == 1


async def test_redis_outage_fail_open_and_fail_closed(tmp_path: Path, db_url: str) -> None:
    own = RedisServer(tmp_path)
    try:
        for fail_closed in (False, True):
            settings = make_settings(db_url, redis_url=own.url, rate_limit_fail_closed=fail_closed)
            async with instance(settings, db_url) as api:
                org = await free_org(api, rate_limit_requests_per_second=1, rate_limit_burst=3)
                h = bearer(org["key"])
                assert (await api.client.get(JOBS, headers=h)).status_code == 200
                assert api.state.rate_limiter is not None and api.state.rate_limiter.mode == "redis"
                if not fail_closed:
                    own.stop()
                    results = [await api.client.get(JOBS, headers=h) for _ in range(5)]
                    # degraded: the in-process bucket keeps limiting; never a 5xx
                    assert api.state.rate_limiter.mode == "degraded"
                    assert [r.status_code for r in results] == [200, 200, 200, 429, 429]
                    own = RedisServer(tmp_path)
                else:
                    own.stop()
                    resp = await api.client.get(JOBS, headers=h)
                    assert resp.status_code == 429
                    body = resp.json()
                    assert body["error"] == "Rate limit unavailable" and body["retry_after_secs"] == 5
                    assert resp.headers["retry-after"] == "5"
                    # public routes likewise; health stays up
                    pub = await api.client.post("/api/v1/auth/validate", json={"token": "t"})
                    assert pub.status_code == 429
                    assert (await api.client.get("/health")).status_code == 200
    finally:
        own.stop()
