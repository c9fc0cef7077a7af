"""JWT sessions over REST (CONTRACT §4.2, §7.2) against real PostgreSQL and Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
import pytest_asyncio

from spooled_backend.auth import tokens
from spooled_backend.config import Settings
from tests.conftest import Api, make_settings
from tests.integration.auth_support import bearer, enterprise_org, fresh_ip, instance, login
from tests.support import RedisServer

JOBS = "/api/v1/jobs"


@pytest.fixture
def redis_settings(db_url: str, redis_server: RedisServer) -> Settings:
    return make_settings(db_url, redis_url=redis_server.url)


@pytest_asyncio.fixture
async def rapi(redis_settings: Settings, db_url: str) -> AsyncIterator[Api]:
    """The app with Redis (revocation works)."""
    async with instance(redis_settings, db_url) as api:
        yield api


def secret(api: Api) -> str:
    return api.state.settings.effective_jwt_secret


def forge(api: Api, **changes: Any) -> str:
    """A token signed with the server's secret, built from a fresh access token's claims."""
    claims = {
        "sub": "x", "org_id": "x", "api_key_id": "x", "iat": int(time.time()),
        "nbf": int(time.time()), "exp": int(time.time()) + 600, "jti": "j", "queues": [],
        "token_type": "access", "sid": "s",
    }
    claims.update(changes)
    return jwt.encode(claims, secret(api), algorithm="HS256")


async def test_login_shapes_and_me(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in",
                         "refresh_expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400 and body["refresh_expires_in"] == 2073600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert isinstance(claims["exp"], int) and claims["org_id"] == org["org_id"]

    me = await rapi.client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    data = me.json()
    assert data["organization_id"] == org["org_id"] and data["api_key_id"] == org["key_id"]
    assert data["queues"] == ["*"]
    assert data["issued_at"].endswith("Z") and data["expires_at"].endswith("Z")
    assert data["organization"]["id"] == org["org_id"]
    assert set(data["organization"]) >= {"id", "name", "slug", "plan_tier", "billing_email"}

    # an access token works on every protected route, like the key
    jobs = await rapi.client.get(JOBS, headers=bearer(body["access_token"]))
    assert jobs.status_code == 200 and jobs.json() == []


async def test_me_refuses_api_keys_and_refresh_tokens(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    for value in (org["key"], body["refresh_token"]):
        resp = await rapi.client.get("/api/v1/auth/me", headers=bearer(value))
        assert resp.status_code == 401 and resp.json()["code"] == "UNAUTHORIZED"


async def test_login_failures(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    for key in ("sp_test_" + "x" * 43, org["key"][:-1] + "Z", "sk_live_" + "y" * 100):
        resp = await rapi.client.post("/api/v1/auth/login", json={"api_key": key}, headers=fresh_ip())
        assert resp.status_code == 401
        assert resp.json() == {"error": "unauthorized", "code": "UNAUTHORIZED",
                               "message": "Invalid credentials"}
    short = await rapi.client.post("/api/v1/auth/login", json={"api_key": "short"}, headers=fresh_ip())
    assert short.status_code == 400 and short.json()["code"] == "VALIDATION_ERROR"
    missing = await rapi.client.post("/api/v1/auth/login", json={}, headers=fresh_ip())
    assert missing.status_code == 422
    # revoked key: no login
    async with rapi.state.pool.acquire() as c:
        await c.execute("UPDATE api_keys SET is_active = false WHERE id = $1", org["key_id"])
    resp = await rapi.client.post("/api/v1/auth/login", json={"api_key": org["key"]}, headers=fresh_ip())
    assert resp.status_code == 401


async def test_public_routes_ignore_a_bad_authorization_header(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    expired = tokens.issue_access(
        secret(rapi), tokens.Lifetimes.from_hours(1), org_id=org["org_id"],
        api_key_id=org["key_id"], queues=[], sid="old", now=int(time.time()) - 7200,
    )
    for header in (bearer(expired), bearer("garbage"), {"Authorization": "Basic abc"}):
        resp = await rapi.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]},
            headers={**header, **fresh_ip()},
        )
        assert resp.status_code == 200, resp.text
        resp = await rapi.client.post(
            "/api/v1/auth/login", json={"api_key": org["key"]}, headers={**header, **fresh_ip()}
        )
        assert resp.status_code == 200, resp.text
        resp = await rapi.client.post("/api/v1/auth/validate", json={"token": "x"}, headers=header)
        assert resp.status_code == 200


async def test_refresh_keeps_session_and_issues_new_jti(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    resp = await rapi.client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert resp.status_code == 200, resp.text
    fresh = resp.json()
    assert set(fresh) == {"access_token", "token_type", "expires_in"}
    assert fresh["token_type"] == "Bearer" and fresh["expires_in"] == 86400
    old = tokens.decode(body["access_token"], secret(rapi))
    new = tokens.decode(fresh["access_token"], secret(rapi))
    assert new.sid == old.sid and new.jti != old.jti and new.token_type == "access"
    assert (await rapi.client.get(JOBS, headers=bearer(fresh["access_token"]))).status_code == 200
    # an access token is not a refresh token
    bad = await rapi.client.post("/api/v1/auth/refresh", json={"refresh_token": body["access_token"]})
    assert bad.status_code == 401
    bad = await rapi.client.post("/api/v1/auth/refresh", json={"refresh_token": "eyJnot.a.token"})
    assert bad.status_code == 401
    # a key revoked after login cannot refresh
    async with rapi.state.pool.acquire() as c:
        await c.execute("UPDATE api_keys SET is_active = false WHERE id = $1", org["key_id"])
    gone = await rapi.client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert gone.status_code == 401


async def test_middleware_checks_on_access_tokens(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    access = body["access_token"]
    base = jwt.decode(access, secret(rapi), algorithms=["HS256"])
    now = int(time.time())
    refused = {
        "refresh as access": body["refresh_token"],
        "expired": forge(rapi, **{**base, "iat": now - 100, "nbf": now - 100, "exp": now - 10}),
        "not yet valid": forge(rapi, **{**base, "nbf": now + 600}),
        "other secret": jwt.encode(base, "another-secret-entirely-0123456789ab", algorithm="HS256"),
        "alg none": jwt.encode(base, None, algorithm="none"),
        "HS512": jwt.encode(base, secret(rapi) * 2, algorithm="HS512"),
        "unknown key": forge(rapi, **{**base, "api_key_id": "00000000-0000-0000-0000-000000000000"}),
        "org mismatch": forge(rapi, **{**base, "org_id": "other", "sub": "other"}),
        "truncated": access[:-5],
    }
    for name, token in refused.items():
        resp = await rapi.client.get(JOBS, headers=bearer(token))
        assert resp.status_code == 401, name
        assert resp.json()["code"] == "UNAUTHORIZED", name
    assert (await rapi.client.get(JOBS, headers=bearer(access))).status_code == 200


async def test_key_state_is_re_read_on_every_request(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    access = (await login(rapi, org["key"]))["access_token"]
    h = bearer(access)
    created = await rapi.client.post(JOBS, json={"queue_name": "emails", "payload": {}}, headers=h)
    assert created.status_code == 201
    # current queues from the database, not the claim snapshot
    async with rapi.state.pool.acquire() as c:
        await c.execute("UPDATE api_keys SET queues = ARRAY['reports'] WHERE id = $1", org["key_id"])
    scoped = await rapi.client.post(JOBS, json={"queue_name": "emails", "payload": {}}, headers=h)
    assert scoped.status_code == 403
    me = await rapi.client.get("/api/v1/auth/me", headers=h)
    assert me.json()["queues"] == ["reports"]
    # expired key, then revoked key, then deleted organization: 401 behind a valid token
    for change in (
        "UPDATE api_keys SET queues = '{}', expires_at = now() - interval '1 s' WHERE id = $1",
        "UPDATE api_keys SET expires_at = NULL, is_active = false WHERE id = $1",
    ):
        async with rapi.state.pool.acquire() as c:
            await c.execute(change, org["key_id"])
        assert (await rapi.client.get(JOBS, headers=h)).status_code == 401
    async with rapi.state.pool.acquire() as c:
        await c.execute("UPDATE api_keys SET is_active = true WHERE id = $1", org["key_id"])
    assert (await rapi.client.get(JOBS, headers=h)).status_code == 200
    async with rapi.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'deleted' WHERE id = $1", org["org_id"])
    assert (await rapi.client.get(JOBS, headers=h)).status_code == 401


async def test_logout_revokes_token_session_and_refresh(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    session = await login(rapi, org["key"])
    other = await login(rapi, org["key"])
    refreshed = (await rapi.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )).json()["access_token"]
    # API keys cannot log out
    assert (await rapi.client.post("/api/v1/auth/logout", headers=bearer(org["key"]))).status_code == 401
    out = await rapi.client.post(
        "/api/v1/auth/logout", json={"refresh_token": session["refresh_token"]},
        headers=bearer(session["access_token"]),
    )
    assert out.status_code == 204 and out.content == b""
    for token in (session["access_token"], refreshed):
        resp = await rapi.client.get(JOBS, headers=bearer(token))
        assert resp.status_code == 401 and resp.json()["message"] == "Token has been revoked"
    again = await rapi.client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert again.status_code == 401
    validated = await rapi.client.post("/api/v1/auth/validate", json={"token": session["access_token"]})
    assert validated.json() == {"valid": False, "error": "Token has been revoked"}
    # another session of the same key is untouched
    assert (await rapi.client.get(JOBS, headers=bearer(other["access_token"]))).status_code == 200
    # empty body (the SDK without a refresh token) is fine too
    out = await rapi.client.post(
        "/api/v1/auth/logout", content=b"", headers={**bearer(other["access_token"]),
                                                     "Content-Type": "application/json"},
    )
    assert out.status_code == 204
    assert (await rapi.client.get(JOBS, headers=bearer(other["access_token"]))).status_code == 401
    redis = rapi.state.redis
    assert redis is not None
    jti = tokens.decode(session["access_token"], secret(rapi)).jti
    sid = tokens.decode(session["access_token"], secret(rapi)).sid
    assert 0 < await redis.ttl(f"token_blacklist:{jti}") <= 86400
    assert 86400 < await redis.ttl(f"session_revoked:{sid}") <= 2073600


async def test_logout_without_redis_is_503_and_nothing_else_breaks(api: Api) -> None:
    org = await enterprise_org(api)
    body = await login(api, org["key"])
    h = bearer(body["access_token"])
    resp = await api.client.post("/api/v1/auth/logout", json={}, headers=h)
    assert resp.status_code == 503 and resp.json()["code"] == "SERVICE_UNAVAILABLE"
    # the message says why: Redis is not configured here (issue 7 §4)
    assert resp.json()["message"] == (
        "Logout requires Redis, which is not configured (REDIS_URL is not set)"
    )
    assert (await api.client.get(JOBS, headers=h)).status_code == 200
    assert (await api.client.get("/api/v1/auth/me", headers=h)).status_code == 200
    refreshed = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    valid = await api.client.post("/api/v1/auth/validate", json={"token": body["access_token"]})
    assert valid.json()["valid"] is True


async def test_validate(rapi: Api) -> None:
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    resp = await rapi.client.post("/api/v1/auth/validate", json={"token": body["access_token"]})
    assert resp.status_code == 200
    data = resp.json()
    assert data["valid"] is True
    claims = data["claims"]
    assert claims["org_id"] == claims["sub"] == org["org_id"]
    assert claims["api_key_id"] == org["key_id"] and claims["token_type"] == "access"
    assert isinstance(claims["exp"], int) and claims["queues"] == ["*"]
    for token in ("garbage", org["key"], body["access_token"] + "x"):
        bad = await rapi.client.post("/api/v1/auth/validate", json={"token": token})
        assert bad.status_code == 200 and bad.json() == {"valid": False, "error": "Invalid token"}
    assert (await rapi.client.post("/api/v1/auth/validate", json={})).status_code == 422


async def test_revocation_is_shared_by_two_instances(
    redis_settings: Settings, db_url: str
) -> None:
    async with instance(redis_settings, db_url) as a, instance(redis_settings, db_url) as b:
        assert a.state is not b.state
        org = await enterprise_org(a)
        session = await login(a, org["key"])
        h = bearer(session["access_token"])
        assert (await b.client.get(JOBS, headers=h)).status_code == 200
        assert (await b.client.post("/api/v1/auth/logout", json={}, headers=h)).status_code == 204
        assert (await a.client.get(JOBS, headers=h)).status_code == 401
        refreshed = await a.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401
        # tokens of one instance are accepted by the other (same JWT_SECRET)
        fresh = await login(b, org["key"])
        assert (await a.client.get(JOBS, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_refresh_as_the_sdk_does_after_a_401(rapi: Api) -> None:
    """The SDK sends the expired access token as Bearer on /auth/refresh, then replays."""
    org = await enterprise_org(rapi)
    body = await login(rapi, org["key"])
    claims = jwt.decode(body["access_token"], secret(rapi), algorithms=["HS256"])
    now = int(time.time())
    expired = forge(rapi, **{**claims, "iat": now - 90000, "nbf": now - 90000, "exp": now - 3600})
    first = await rapi.client.get(JOBS, headers=bearer(expired))
    assert first.status_code == 401
    refreshed = await rapi.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}, headers=bearer(expired)
    )
    assert refreshed.status_code == 200
    replay = await rapi.client.get(JOBS, headers=bearer(refreshed.json()["access_token"]))
    assert replay.status_code == 200


async def test_logout_503_says_redis_is_unreachable(db_url: str) -> None:
    """REDIS_URL set but nothing answers at start: degraded mode, and logout's 503 says so."""
    from tests.support import free_port

    settings = make_settings(db_url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with instance(settings, db_url) as api:
        org = await enterprise_org(api)
        body = await login(api, org["key"])
        resp = await api.client.post("/api/v1/auth/logout", json={},
                                     headers=bearer(body["access_token"]))
        assert resp.status_code == 503 and resp.json()["code"] == "SERVICE_UNAVAILABLE"
        assert resp.json()["message"] == (
            "Logout requires Redis: REDIS_URL is set but Redis was unreachable when the server "
            "started (running without cache); restart once Redis is up"
        )
        health = (await api.client.get("/health")).json()
        assert health["cache"] is False
