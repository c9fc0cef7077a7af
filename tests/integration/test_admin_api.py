"""Admin API with X-Admin-Key (CONTRACT §7.14, §4.3) against real PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, _api, make_settings

ADMIN = {"X-Admin-Key": "admin-test-key-0123456789"}
BASE = "/api/v1/admin"


async def test_admin_key_errors(api: Api, db_url: str) -> None:
    missing = await api.client.get(f"{BASE}/plans")
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "missing_admin_key",
        "code": "MISSING_ADMIN_KEY",
        "message": "Missing X-Admin-Key header",
    }
    wrong = await api.client.get(f"{BASE}/plans", headers={"X-Admin-Key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_ADMIN_KEY"
    # a tenant API key is not an admin credential
    org = await api.create_org()
    as_tenant = await api.client.get(f"{BASE}/stats", headers=api.as_key(org["api_key"]["key"]))
    assert as_tenant.status_code == 401
    # the SDK sends Authorization next to X-Admin-Key: it is ignored
    both = await api.client.get(
        f"{BASE}/plans", headers={**ADMIN, "Authorization": "Bearer sp_test_garbage_value_x"}
    )
    assert both.status_code == 200
    async for other in _api(make_settings(db_url, admin_api_key=None), db_url):
        off = await other.client.get(f"{BASE}/plans", headers=ADMIN)
        assert off.status_code == 401 and off.json()["code"] == "ADMIN_NOT_CONFIGURED"


async def test_create_get_patch_org(api: Api) -> None:
    resp = await api.client.post(
        f"{BASE}/organizations",
        json={
            "name": "Big Corp",
            "slug": "big-corp",
            "plan_tier": "pro",
            "billing_email": "billing@big.example.com",
            "settings": {"region": "eu"},
            "custom_limits": {"max_queues": 3},
        },
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    org = resp.json()["organization"]
    key = resp.json()["api_key"]
    assert org["plan_tier"] == "pro" and org["custom_limits"] == {"max_queues": 3}
    assert org["settings"]["region"] == "eu" and org["settings"]["webhook_token"].startswith("whk_")
    assert key["name"] == "Initial Admin Key" and key["key"].startswith("sk_test_")
    oid = org["id"]

    detail = (await api.client.get(f"{BASE}/organizations/{oid}", headers=ADMIN)).json()
    assert detail["api_keys_count"] == 1 and detail["total_jobs"] == 0
    assert detail["usage_info"]["plan"] == "pro"
    assert detail["usage_info"]["limits"]["max_queues"] == 3
    assert detail["created_at"].endswith("Z") and detail["updated_at"].endswith("Z")

    token = org["settings"]["webhook_token"]
    patch = await api.client.patch(
        f"{BASE}/organizations/{oid}",
        json={
            "plan_tier": "starter",
            "name": "Big Corp Ltd",
            "settings": {"region": "us"},
            "stripe_customer_id": "cus_123",
        },
        headers=ADMIN,
    )
    assert patch.status_code == 200, patch.text
    body = patch.json()
    assert body["plan_tier"] == "starter" and body["name"] == "Big Corp Ltd"
    assert body["settings"] == {"region": "us", "webhook_token": token}
    assert body["custom_limits"] == {"max_queues": 3}  # omitted: kept
    assert body["stripe_customer_id"] == "cus_123"
    reset = await api.client.patch(
        f"{BASE}/organizations/{oid}", json={"custom_limits": {}}, headers=ADMIN
    )
    assert reset.json()["custom_limits"] is None
    await api.client.patch(
        f"{BASE}/organizations/{oid}", json={"custom_limits": {"max_workers": 9}}, headers=ADMIN
    )
    nulled = await api.client.patch(
        f"{BASE}/organizations/{oid}",
        json={"custom_limits": None, "stripe_customer_id": None},
        headers=ADMIN,
    )
    assert nulled.json()["custom_limits"] is None and nulled.json()["stripe_customer_id"] is None
    # the plan change is effective on the tenant's next request
    usage = await api.client.get("/api/v1/organizations/usage", headers=api.as_key(key["key"]))
    assert usage.json()["plan"] == "starter"


async def test_admin_bad_input(api: Api) -> None:
    org = await api.create_org(billing_email="first@x.example.com")
    oid = org["organization"]["id"]
    url = f"{BASE}/organizations"
    for body, status in (
        ({"name": "Good Name", "slug": "ok-slug", "plan_tier": "platinum"}, 400),
        ({"name": "Good Name", "slug": "ok-slug", "custom_limits": {"max_bogus": 1}}, 400),
        ({"name": "Good Name", "slug": "ok-slug", "custom_limits": {"max_queues": -1}}, 400),
        ({"name": "Good Name", "slug": "ok-slug", "custom_limits": {"max_queues": "5"}}, 400),
        ({"name": "Good Name", "slug": "ok-slug", "custom_limits": [1]}, 400),
        (
            {"name": "Good Name", "slug": "ok-slug", "custom_limits": {"max_jobs_per_day": 2**70}},
            400,
        ),
        ({"name": "Bad\u0000Name", "slug": "ok-slug"}, 400),
        ({"name": "Good Name", "slug": "ok-slug", "settings": "x"}, 400),
        ({"name": "Good Name", "slug": "BAD"}, 400),
        ({"name": "Good Name", "slug": "ok-slug", "billing_email": "FIRST@x.example.com"}, 409),
        ({"name": "Good Name", "slug": org["organization"]["slug"]}, 409),
        ({"slug": "ok-slug"}, 422),
    ):
        resp = await api.client.post(url, json=body, headers=ADMIN)
        assert resp.status_code == status, (body, resp.text)
    surrogate = await api.client.post(
        url,
        content=b'{"name": "Good Name", "slug": "ok-slug", "settings": {"k": "\\ud800"}}',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 400, surrogate.text
    for body, status in (
        ({"plan_tier": "deleted"}, 400),
        ({"plan_tier": None}, 400),
        ({"name": "x"}, 400),
        ({"custom_limits": {"max_queues": 1.5}}, 400),
        ({"settings": [1]}, 400),
        ({"stripe_customer_id": ""}, 400),
        ({"name": "Nul\u0000Name"}, 400),
        ({"settings": {"a": "\u0000"}}, 400),
    ):
        resp = await api.client.patch(f"{url}/{oid}", json=body, headers=ADMIN)
        assert resp.status_code == status, (body, resp.text)
    other = await api.create_org(billing_email="second@x.example.com")
    dup = await api.client.patch(
        f"{url}/{other['organization']['id']}",
        json={"billing_email": "First@x.example.com"},
        headers=ADMIN,
    )
    assert dup.status_code == 409
    for method, path in (
        ("GET", "nope"),
        ("PATCH", "nope"),
        ("DELETE", "nope"),
        ("POST", "nope/reset-usage"),
    ):
        resp = await api.client.request(method, f"{url}/{path}", json={}, headers=ADMIN)
        assert resp.status_code == 404, (method, path, resp.text)
    nul = await api.client.get(f"{url}/%00", headers=ADMIN)
    assert nul.status_code == 404
    for query in (
        "sort_by=password",
        "sort_order=sideways",
        "plan_tier=gold",
        "limit=abc",
        "offset=-1",
        "search=%00",
        "sort_by=name;DROP",
    ):
        resp = await api.client.get(f"{url}?{query}", headers=ADMIN)
        assert resp.status_code == 400, (query, resp.text)
        assert resp.json()["code"] == "VALIDATION_ERROR"
    bad_flag = await api.client.delete(f"{url}/{oid}?hard_delete=maybe", headers=ADMIN)
    assert bad_flag.status_code == 400
    assert (await api.client.get(f"{url}/{oid}", headers=ADMIN)).json()["plan_tier"] == "free"


async def test_list_search_sort_page(api: Api) -> None:
    for slug, name in (("alpha-one", "Zeta"), ("beta-two", "Yak"), ("gamma-three", "Xylo")):
        await api.create_org(slug, name=name)
    url = f"{BASE}/organizations"
    listed = (await api.client.get(url, headers=ADMIN)).json()
    assert listed["total"] == 3 and listed["limit"] == 50 and listed["offset"] == 0
    assert [o["slug"] for o in listed["organizations"]] == ["gamma-three", "beta-two", "alpha-one"]
    item = listed["organizations"][0]
    assert set(item["usage"]) == {"jobs_today", "active_jobs", "queues", "workers", "api_keys"}
    assert item["usage"]["api_keys"] == 1 and "webhook_token" in item["settings"]
    by_name = (await api.client.get(f"{url}?sort_by=name&sort_order=asc", headers=ADMIN)).json()
    assert [o["name"] for o in by_name["organizations"]] == ["Xylo", "Yak", "Zeta"]
    page = (
        await api.client.get(f"{url}?sort_by=slug&sort_order=asc&limit=1&offset=1", headers=ADMIN)
    ).json()
    assert [o["slug"] for o in page["organizations"]] == ["beta-two"] and page["total"] == 3
    found = (await api.client.get(url, params={"search": "TWO"}, headers=ADMIN)).json()
    assert [o["slug"] for o in found["organizations"]] == ["beta-two"] and found["total"] == 1
    wild = (await api.client.get(url, params={"search": "%"}, headers=ADMIN)).json()
    assert wild["total"] == 0  # LIKE wildcards are matched literally
    await api.client.patch(
        f"{url}/{found['organizations'][0]['id']}", json={"plan_tier": "pro"}, headers=ADMIN
    )
    pro = (await api.client.get(f"{url}?plan_tier=pro", headers=ADMIN)).json()
    assert [o["slug"] for o in pro["organizations"]] == ["beta-two"]
    clamped = (await api.client.get(f"{url}?limit=1000", headers=ADMIN)).json()
    assert clamped["limit"] == 100


async def test_admin_keys_reset_usage_and_delete(api: Api) -> None:
    created = (
        await api.client.post(
            f"{BASE}/organizations", json={"name": "Keyed Org", "slug": "keyed-org"}, headers=ADMIN
        )
    ).json()
    oid = created["organization"]["id"]
    url = f"{BASE}/organizations/{oid}"
    # admin keys ignore the api_keys cap (free: 2) and default to all queues
    keys = []
    for i in range(3):
        resp = await api.client.post(
            f"{url}/api-keys", json={"name": f"ops {i}", "rate_limit": 100}, headers=ADMIN
        )
        assert resp.status_code == 201, resp.text
        keys.append(resp.json())
    assert keys[0]["queues"] == ["*"]
    scoped = await api.client.post(
        f"{url}/api-keys",
        json={"name": "scoped", "queues": ["a"], "expires_at": "2099-01-01T00:00:00Z"},
        headers=ADMIN,
    )
    assert scoped.json()["queues"] == ["a"] and scoped.json()["expires_at"].startswith("2099-01-01")
    for bad in ({}, {"name": ""}, {"name": "x", "rate_limit": 0}, {"name": "x", "queues": "a"}):
        resp = await api.client.post(f"{url}/api-keys", json=bad, headers=ADMIN)
        assert resp.status_code in (400, 422), (bad, resp.text)
    h = api.as_key(keys[0]["key"])
    for _ in range(3):
        await api.client.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}, headers=h)
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval(
                "SELECT jobs_created_today FROM organization_usage WHERE organization_id = $1", oid
            )
            == 3
        )
    reset = await api.client.post(f"{url}/reset-usage", headers=ADMIN)
    assert reset.status_code == 204 and reset.content == b""
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval(
                "SELECT jobs_created_today FROM organization_usage WHERE organization_id = $1", oid
            )
            == 0
        )

    # soft delete: no 409 for admins, every key stops working, keys can no longer be minted
    assert (await api.client.delete(url, headers=ADMIN)).status_code == 204
    assert (await api.client.get("/api/v1/jobs", headers=h)).status_code == 401
    assert (await api.client.get(url, headers=ADMIN)).json()["plan_tier"] == "deleted"
    refused = await api.client.post(f"{url}/api-keys", json={"name": "late"}, headers=ADMIN)
    assert refused.status_code == 404
    assert (await api.client.delete(url, headers=ADMIN)).status_code == 204  # idempotent
    # an admin can restore the plan (keys stay revoked) and mint a fresh key
    restored = await api.client.patch(url, json={"plan_tier": "free"}, headers=ADMIN)
    assert restored.json()["plan_tier"] == "free"
    assert (await api.client.get("/api/v1/jobs", headers=h)).status_code == 401
    fresh = (await api.client.post(f"{url}/api-keys", json={"name": "new"}, headers=ADMIN)).json()
    assert (
        await api.client.get("/api/v1/jobs", headers=api.as_key(fresh["key"]))
    ).status_code == 200

    # hard delete removes everything
    hard = await api.client.delete(f"{url}?hard_delete=true", headers=ADMIN)
    assert hard.status_code == 204
    assert (await api.client.get(url, headers=ADMIN)).status_code == 404
    async with api.state.pool.acquire() as c:
        for table in ("jobs", "api_keys", "organization_usage", "job_history"):
            assert (
                await c.fetchval(f"SELECT count(*) FROM {table} WHERE organization_id = $1", oid)
                == 0
            ), table
    assert (await api.client.delete(f"{url}?hard_delete=true", headers=ADMIN)).status_code == 404


async def test_stats_and_plans(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    for _ in range(2):
        await api.client.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}, headers=h)
    await api.create_org()
    stats = (await api.client.get(f"{BASE}/stats", headers=ADMIN)).json()
    assert stats["organizations"]["total"] == 2
    assert sorted((p["plan"], p["count"]) for p in stats["organizations"]["by_plan"]) == [
        ("enterprise", 1),
        ("free", 1),
    ]
    assert stats["organizations"]["created_today"] == 2
    assert stats["organizations"]["created_this_week"] == 2
    assert stats["jobs"] == {
        "total_active": 2,
        "pending": 2,
        "processing": 0,
        "completed_24h": 0,
        "failed_24h": 0,
    }
    assert stats["workers"] == {"total": 0, "healthy": 0, "degraded": 0}
    assert isinstance(stats["system"]["api_version"], str)
    assert stats["system"]["uptime_seconds"] >= 0
    plans = (await api.client.get(f"{BASE}/plans", headers=ADMIN)).json()
    assert [p["tier"] for p in plans] == ["free", "starter", "pro", "enterprise"]
    assert plans[0]["max_jobs_per_day"] == 1000 and plans[3]["max_jobs_per_day"] is None
    assert plans[0]["display_name"] == "Free" and plans[0]["max_payload_size_bytes"] == 65536
