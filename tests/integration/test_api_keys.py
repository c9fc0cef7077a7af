"""API keys over REST (CONTRACT §7.5, §4.1): lifecycle, scope, legacy keys, revocation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from spooled_backend.auth import keys
from spooled_backend.config import Settings
from tests.conftest import Api, _api

URL = "/api/v1/api-keys"


@asynccontextmanager
async def second_replica(settings: Settings, db_url: str) -> AsyncIterator[Api]:
    """Another app instance (own pool, own bcrypt cache) on the same database."""
    gen = _api(settings, db_url)
    api2 = await gen.__anext__()
    try:
        yield api2
    finally:
        await gen.aclose()


async def test_create_list_get_update_revoke(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    resp = await api.client.post(
        URL,
        json={
            "name": "CI key (prod)",
            "queues": ["emails", "sms", "emails"],
            "rate_limit": 600,
            "expires_at": expires,
        },
        headers=h,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["key"].startswith("sk_test_") and len(created["key"]) == 51
    assert created["queues"] == ["emails", "sms"] and created["name"] == "CI key (prod)"
    assert created["expires_at"].startswith(expires[:19])

    # the new key works, only for its queues
    kh = api.as_key(created["key"])
    ok = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "emails", "payload": {}}, headers=kh
    )
    assert ok.status_code == 201
    no = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "other", "payload": {}}, headers=kh
    )
    assert no.status_code == 403

    listed = (await api.client.get(URL, headers=h)).json()
    assert [k["name"] for k in listed] == ["CI key (prod)", "Initial Admin Key"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    one = (await api.client.get(f"{URL}/{created['id']}", headers=h)).json()
    assert one["is_active"] is True and one["rate_limit"] == 600
    assert one["organization_id"] == tenant["org_id"] and one["key_prefix"] == "sk_test_"

    upd = await api.client.put(
        f"{URL}/{created['id']}",
        json={"name": "renamed", "queues": ["*"], "rate_limit": None},
        headers=h,
    )
    assert upd.status_code == 200, upd.text
    assert upd.json()["name"] == "renamed" and upd.json()["queues"] == ["*"]
    assert upd.json()["rate_limit"] is None and upd.json()["expires_at"] is not None
    wide = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "other", "payload": {}}, headers=kh
    )
    assert wide.status_code == 201

    rev = await api.client.delete(f"{URL}/{created['id']}", headers=h)
    assert rev.status_code == 204
    after = await api.client.get("/api/v1/jobs", headers=kh)
    assert after.status_code == 401
    listed = (await api.client.get(URL, headers=h)).json()
    assert [k["is_active"] for k in listed] == [False, True]
    assert (await api.client.delete(f"{URL}/{created['id']}", headers=h)).status_code == 204

    # re-activation brings it back
    back = await api.client.put(f"{URL}/{created['id']}", json={"is_active": True}, headers=h)
    assert back.status_code == 200 and back.json()["is_active"] is True
    assert (await api.client.get("/api/v1/jobs", headers=kh)).status_code == 200


async def test_bad_input_is_4xx(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    bad_creates = [
        ({}, 422),
        ({"name": ""}, 400),
        ({"name": "x" * 101}, 400),
        ({"name": "bad/name"}, 400),
        ({"name": "ok", "permissions": ["all"]}, 400),
        ({"name": "ok", "queues": ["bad queue"]}, 400),
        ({"name": "ok", "queues": [f"q{i}" for i in range(51)]}, 400),
        ({"name": "ok", "queues": "emails"}, 422),
        ({"name": "ok", "rate_limit": 0}, 400),
        ({"name": "ok", "rate_limit": 10_001}, 400),
        ({"name": "ok", "rate_limit": True}, 422),
        ({"name": "ok", "expires_at": past}, 400),
        ({"name": "ok", "expires_at": "tomorrow"}, 400),
    ]
    for body, status in bad_creates:
        resp = await api.client.post(URL, json=body, headers=h)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["code"] == "VALIDATION_ERROR"
    assert len((await api.client.get(URL, headers=h)).json()) == 1

    key_id = (await api.client.post(URL, json={"name": "k"}, headers=h)).json()["id"]
    for body in (
        {"name": None},
        {"queues": None},
        {"is_active": None},
        {"rate_limit": -1},
        {"is_active": "yes"},
        {"expires_at": past},
        {"unknown": 1},
    ):
        resp = await api.client.put(f"{URL}/{key_id}", json=body, headers=h)
        assert resp.status_code in (400, 422), (body, resp.text)
    for path in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
        assert (await api.client.get(f"{URL}/{path}", headers=h)).status_code == 404
        assert (
            await api.client.put(f"{URL}/{path}", json={"name": "x"}, headers=h)
        ).status_code == 404
        assert (await api.client.delete(f"{URL}/{path}", headers=h)).status_code == 404


async def test_scoped_keys_cannot_administer_keys(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    scoped = (await api.client.post(URL, json={"name": "s", "queues": ["a"]}, headers=h)).json()
    sh = api.as_key(scoped["key"])
    calls = [
        ("GET", URL, None),
        ("POST", URL, {"name": "wider", "queues": ["*"]}),
        ("POST", URL, {"name": "same", "queues": ["a"]}),
        ("GET", f"{URL}/{scoped['id']}", None),
        ("PUT", f"{URL}/{scoped['id']}", {"queues": ["*"]}),
        ("DELETE", f"{URL}/{scoped['id']}", None),
    ]
    for method, path, body in calls:
        resp = await api.client.request(method, path, json=body, headers=sh)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["code"] == "ACCESS_DENIED"
    one = (await api.client.get(f"{URL}/{scoped['id']}", headers=h)).json()
    assert one["queues"] == ["a"] and one["is_active"] is True
    assert len((await api.client.get(URL, headers=h)).json()) == 2


async def test_production_prefix(api: Api, db_url: str) -> None:
    from tests.conftest import make_settings

    prod = make_settings(
        db_url, rust_env="production", jwt_secret="Zq8#Lm2!Vx7$Np4@Rt6&Kw9*Bd3^Hf5%"
    )
    async with second_replica(prod, db_url) as api2:
        created = await api2.create_org("prod-org")
        assert created["api_key"]["key"].startswith("sk_live_")  # CONTRACT §21 R2
        h = api2.as_key(created["api_key"]["key"])
        made = await api2.client.post(URL, json={"name": "live"}, headers=h)
        assert made.json()["key"].startswith("sk_live_") and made.json()["key_prefix"] == "sk_live_"


async def test_legacy_sk_keys_authenticate(api: Api, tenant: dict[str, Any]) -> None:
    raw = keys.generate_api_key("sk_live_")
    async with api.state.pool.acquire() as c:
        key_id = await c.fetchval(
            """INSERT INTO api_keys (organization_id, key_hash, key_prefix, lookup_hash, name, queues)
               VALUES ($1, $2, 'sk_live_', NULL, 'legacy', '{}') RETURNING id""",
            tenant["org_id"],
            keys.hash_key(raw, 4),
        )
    resp = await api.client.get("/api/v1/jobs", headers=api.as_key(raw))
    assert resp.status_code == 200
    async with api.state.pool.acquire() as c:
        stored = await c.fetchval("SELECT lookup_hash FROM api_keys WHERE id = $1", key_id)
    assert stored == keys.lookup_hash(raw)
    assert (await api.client.get("/api/v1/jobs", headers=api.as_key(raw))).status_code == 200
    wrong = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert (await api.client.get("/api/v1/jobs", headers=api.as_key(wrong))).status_code == 401
    await api.client.delete(f"{URL}/{key_id}", headers=tenant["headers"])
    assert (await api.client.get("/api/v1/jobs", headers=api.as_key(raw))).status_code == 401


async def test_revocation_is_seen_by_another_replica(
    api: Api, tenant: dict[str, Any], settings: Settings, db_url: str
) -> None:
    created = (
        await api.client.post(URL, json={"name": "shared"}, headers=tenant["headers"])
    ).json()
    kh = api.as_key(created["key"])
    async with second_replica(settings, db_url) as replica:
        assert replica.state is not api.state
        # warm the other replica's bcrypt cache with the key
        for _ in range(2):
            assert (await replica.client.get("/api/v1/jobs", headers=kh)).status_code == 200
        assert (
            await api.client.delete(f"{URL}/{created['id']}", headers=tenant["headers"])
        ).status_code == 204
        resp = await replica.client.get("/api/v1/jobs", headers=kh)
        assert resp.status_code == 401 and resp.json()["code"] == "UNAUTHORIZED"
        # expiry set through one replica is honoured by the other too
        other = (
            await replica.client.post(URL, json={"name": "exp"}, headers=tenant["headers"])
        ).json()
        oh = api.as_key(other["key"])
        assert (await api.client.get("/api/v1/jobs", headers=oh)).status_code == 200
        async with api.state.pool.acquire() as c:
            await c.execute(
                "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
                other["id"],
            )
        assert (await replica.client.get("/api/v1/jobs", headers=oh)).status_code == 401


async def test_api_key_cap_holds_under_concurrency(api: Api) -> None:
    created = await api.create_org()
    oid = created["organization"]["id"]
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE organizations SET custom_limits = $2 WHERE id = $1",
            oid,
            {"max_api_keys": 5, "rate_limit_requests_per_second": 1000, "rate_limit_burst": 1000},
        )
    h = api.as_key(created["api_key"]["key"])
    results = await asyncio.gather(
        *(api.client.post(URL, json={"name": f"k{i}"}, headers=h) for i in range(20))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] * 4 + [429] * 16
    refused = next(r for r in results if r.status_code == 429)
    assert "retry-after" not in refused.headers
    assert refused.json() == {
        "error": "limit_exceeded",
        "code": "QUOTA_EXCEEDED",
        "message": "api keys limit reached (5/5). Upgrade to starter for higher limits.",
        "resource": "api_keys",
        "current": 5,
        "limit": 5,
        "plan": "free",
        "upgrade_to": "starter",
    }
    async with api.state.pool.acquire() as c:
        active = await c.fetchval(
            "SELECT count(*) FROM api_keys WHERE organization_id = $1 AND is_active", oid
        )
    assert active == 5
    # revoking one frees a slot; re-activating it when full is refused
    keys_list = (await api.client.get(URL, headers=h)).json()
    victim = next(k for k in keys_list if k["name"] != "Initial Admin Key")
    await api.client.delete(f"{URL}/{victim['id']}", headers=h)
    assert (await api.client.post(URL, json={"name": "fresh"}, headers=h)).status_code == 201
    again = await api.client.put(f"{URL}/{victim['id']}", json={"is_active": True}, headers=h)
    assert again.status_code == 429 and again.json()["resource"] == "api_keys"
