"""Tenant isolation on the control plane: organization B, holding its own (unrestricted) key,
walks every organizations / api-keys / billing / usage route with organization A's ids.
Every answer must be 404 (indistinguishable from an id that does not exist) or B's own data,
and nothing of A may change."""

from __future__ import annotations

import uuid
from typing import Any

import pytest_asyncio

from tests.conftest import Api, _api, make_settings

NO_THROTTLE = {"rate_limit_requests_per_second": 10_000, "rate_limit_burst": 10_000}


@pytest_asyncio.fixture
async def two(db_url: str) -> Any:
    # Stripe "configured" with an unreachable API: any attempt to use A's customer for B would
    # fail loudly instead of silently succeeding.
    settings = make_settings(
        db_url, stripe_secret_key="sk_test_x", stripe_api_base="http://127.0.0.1:9"
    )
    async for api in _api(settings, db_url):
        orgs = []
        for slug in ("tenant-a", "tenant-b"):
            created = await api.create_org(slug, billing_email=f"owner@{slug}.example.com")
            oid = created["organization"]["id"]
            async with api.state.pool.acquire() as c:
                await c.execute(
                    "UPDATE organizations SET custom_limits = $2 WHERE id = $1", oid, NO_THROTTLE
                )
            orgs.append(
                {
                    "id": oid,
                    "key": created["api_key"]["key"],
                    "key_id": created["api_key"]["id"],
                    "h": api.as_key(created["api_key"]["key"]),
                    "org": created["organization"],
                }
            )
        a, b = orgs
        # give A data of every kind: a second key, jobs, a stripe customer
        extra = await api.client.post(
            "/api/v1/api-keys", json={"name": "a-extra", "queues": ["qa"]}, headers=a["h"]
        )
        a["extra_key_id"] = extra.json()["id"]
        a["scoped_h"] = api.as_key(extra.json()["key"])
        for _ in range(3):
            await api.client.post(
                "/api/v1/jobs", json={"queue_name": "qa", "payload": {}}, headers=a["h"]
            )
        async with api.state.pool.acquire() as c:
            await c.execute(
                "UPDATE organizations SET stripe_customer_id = 'cus_A' WHERE id = $1", a["id"]
            )
        yield api, a, b


async def snapshot(api: Api, org_id: str) -> dict[str, Any]:
    async with api.state.pool.acquire() as c:
        org = dict(await c.fetchrow("SELECT * FROM organizations WHERE id = $1", org_id))
        keys = [
            dict(r)
            for r in await c.fetch(
                "SELECT id, name, queues, rate_limit, is_active, expires_at FROM api_keys "
                "WHERE organization_id = $1 ORDER BY id",
                org_id,
            )
        ]
        jobs = await c.fetchval("SELECT count(*) FROM jobs WHERE organization_id = $1", org_id)
    return {"org": org, "keys": keys, "jobs": jobs}


async def test_b_cannot_read_change_or_detect_a(two: Any) -> None:
    api, a, b = two
    before = await snapshot(api, a["id"])
    unknown_org = str(uuid.uuid4())
    h = b["h"]

    # --- organizations -------------------------------------------------------------------
    listed = (await api.client.get("/api/v1/organizations", headers=h)).json()
    assert [o["id"] for o in listed] == [b["id"]]
    probes = [
        ("GET", "/api/v1/organizations/{}", None),
        (
            "PUT",
            "/api/v1/organizations/{}",
            {"name": "Pwned Org", "settings": {"x": 1}, "billing_email": "evil@x.example.com"},
        ),
        ("DELETE", "/api/v1/organizations/{}", None),
        ("GET", "/api/v1/organizations/{}/members", None),
    ]
    for method, template, body in probes:
        foreign = await api.client.request(method, template.format(a["id"]), json=body, headers=h)
        missing = await api.client.request(
            method, template.format(unknown_org), json=body, headers=h
        )
        assert foreign.status_code == 404, (method, template, foreign.text)
        assert foreign.json() == missing.json()  # no existence leak

    usage = (await api.client.get("/api/v1/organizations/usage", headers=h)).json()
    assert usage["usage"]["active_jobs"]["current"] == 0
    assert usage["usage"]["api_keys"]["current"] == 1
    assert usage["usage"]["queues"]["current"] == 0

    token_b = (await api.client.get("/api/v1/organizations/webhook-token", headers=h)).json()
    assert token_b["webhook_token"] != a["org"]["settings"]["webhook_token"]
    assert b["id"] in token_b["webhook_url"] and a["id"] not in token_b["webhook_url"]
    regen = (
        await api.client.post("/api/v1/organizations/webhook-token/regenerate", headers=h)
    ).json()
    assert regen["webhook_token"] != token_b["webhook_token"]

    members_b = (await api.client.get(f"/api/v1/organizations/{b['id']}/members", headers=h)).json()
    assert {m["id"] for m in members_b} == {b["key_id"]}

    # --- api keys ------------------------------------------------------------------------
    keys_b = (await api.client.get("/api/v1/api-keys", headers=h)).json()
    assert {k["id"] for k in keys_b} == {b["key_id"]}
    for key_id in (a["key_id"], a["extra_key_id"]):
        for method, body in (
            ("GET", None),
            ("PUT", {"name": "stolen", "queues": ["*"], "is_active": False}),
            ("DELETE", None),
        ):
            foreign = await api.client.request(
                method, f"/api/v1/api-keys/{key_id}", json=body, headers=h
            )
            missing = await api.client.request(
                method, f"/api/v1/api-keys/{uuid.uuid4()}", json=body, headers=h
            )
            assert foreign.status_code == 404, (method, foreign.text)
            assert foreign.json() == missing.json()
    new_key = (
        await api.client.post("/api/v1/api-keys", json={"name": "b2", "queues": ["qa"]}, headers=h)
    ).json()
    nh = api.as_key(new_key["key"])
    jobs_seen = (
        await api.client.get("/api/v1/jobs", params={"queue_name": "qa"}, headers=nh)
    ).json()
    assert jobs_seen == []  # same queue name, other organization: nothing visible

    # --- billing -------------------------------------------------------------------------
    status = (await api.client.get("/api/v1/billing/status", headers=h)).json()
    assert status["has_stripe_customer"] is False and status["plan_tier"] == "free"
    portal = await api.client.post(
        "/api/v1/billing/portal", json={"return_url": "https://spooled.cloud/b"}, headers=h
    )
    assert portal.status_code == 400 and portal.json()["message"] == "No billing account found"

    # --- admin routes are not reachable with a tenant key ----------------------------------
    for method, path in (
        ("GET", "/api/v1/admin/organizations"),
        ("GET", f"/api/v1/admin/organizations/{a['id']}"),
        ("POST", f"/api/v1/admin/organizations/{a['id']}/api-keys"),
        ("DELETE", f"/api/v1/admin/organizations/{a['id']}"),
    ):
        resp = await api.client.request(method, path, json={"name": "x"}, headers=h)
        assert resp.status_code == 401, (method, path)

    # --- A is exactly as it was, and its keys still work ------------------------------------
    after = await snapshot(api, a["id"])
    assert after == before
    assert (await api.client.get("/api/v1/jobs", headers=a["h"])).status_code == 200


async def test_quotas_are_per_organization(two: Any) -> None:
    api, a, b = two
    # A is at its api_keys cap (free: 2); B is not affected
    full = await api.client.post("/api/v1/api-keys", json={"name": "a3"}, headers=a["h"])
    assert full.status_code == 429 and full.json()["current"] == 2
    assert (
        await api.client.post("/api/v1/api-keys", json={"name": "b2"}, headers=b["h"])
    ).status_code == 201
    # A's queue and daily counters do not spill into B's
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE organization_usage SET jobs_created_today = 1000 WHERE organization_id = $1",
            a["id"],
        )
    assert (
        await api.client.post(
            "/api/v1/jobs", json={"queue_name": "q", "payload": {}}, headers=a["h"]
        )
    ).status_code == 429
    ok = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q", "payload": {}}, headers=b["h"]
    )
    assert ok.status_code == 201
    usage_b = (await api.client.get("/api/v1/organizations/usage", headers=b["h"])).json()
    assert usage_b["usage"]["jobs_today"]["current"] == 1


async def test_scoped_key_of_a_sees_only_what_it_may(two: Any) -> None:
    api, a, b = two
    sh = a["scoped_h"]  # A's key limited to queue "qa"
    org = (await api.client.get(f"/api/v1/organizations/{a['id']}", headers=sh)).json()
    assert "webhook_token" not in org["settings"]
    for method, path in (
        ("GET", "/api/v1/organizations/usage"),
        ("GET", "/api/v1/organizations/webhook-token"),
        ("POST", "/api/v1/organizations/webhook-token/regenerate"),
        ("GET", f"/api/v1/organizations/{a['id']}/members"),
        ("PUT", f"/api/v1/organizations/{a['id']}"),
        ("DELETE", f"/api/v1/organizations/{a['id']}"),
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/billing/portal"),
    ):
        resp = await api.client.request(method, path, json={"name": "zzz"}, headers=sh)
        assert resp.status_code == 403, (method, path, resp.text)
    # ...and as a scoped key of A it still cannot see B
    foreign = await api.client.get(f"/api/v1/organizations/{b['id']}", headers=sh)
    assert foreign.status_code == 404
