"""CONTRACT §21 revisions R3–R6, R9, R12, R13 through the official SDK (`spooled` 1.6.0) where it has
the call, and at wire level for what only the Node SDK (`@spooled/sdk`, not installable here) and
the official dashboard send.
"""

from __future__ import annotations

from typing import Any

import pytest
from spooled.errors import NotFoundError

from tests.conftest import Api
from tests.integration.jobs_support import assert_error, claim, create_job, get_job
from tests.integration.test_workers_sdk import sdk_client

ORG_URL = "/api/v1/organizations"


async def test_webhook_token_clear_through_the_sdk_http_layer(api: Api, tenant: dict[str, Any]) -> None:
    """R3/R4: SDKs before 1.6 call POST /organizations/webhook-token/clear and expect success;
    the Node SDK reads `token`. 1.6 refuses locally, so drive its HTTP layer (what older SDKs
    send: an empty JSON object)."""
    async with sdk_client(api, tenant["key"]) as client:
        token = await client.organizations.get_webhook_token()
        assert token.webhook_token and token.webhook_token.startswith("whk_")
        raw: dict[str, Any] = await client._http.post("/organizations/webhook-token/clear", {})
        assert raw == {"webhook_token": None, "token": None, "webhook_url": token.webhook_url}
        after = await client.organizations.get_webhook_token()
        assert after.webhook_token is None
        rotated = await client.organizations.regenerate_webhook_token()
        assert rotated.webhook_token and rotated.webhook_token.startswith("whk_")
    # Node SDK, wire level: `token` on GET and regenerate
    h = tenant["headers"]
    got = (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json()
    assert got["token"] == got["webhook_token"] == rotated.webhook_token


async def test_webhook_token_clear_bad_bodies(api: Api, tenant: dict[str, Any]) -> None:
    h = {**tenant["headers"], "Content-Type": "application/json"}
    url = f"{ORG_URL}/webhook-token/clear"
    before = (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json()
    for body, status, code in (
        (b"[]", 422, "VALIDATION_ERROR"),
        (b"42", 422, "VALIDATION_ERROR"),
        (b"{", 400, "INVALID_JSON"),
        (b'{"confirm": false}', 400, "BAD_REQUEST"),
        (b'{"confirm": "\\u0000"}', 400, "VALIDATION_ERROR"),
    ):
        assert_error(await api.client.post(url, content=body, headers=h), status, code)
    assert (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json() == before
    assert (await api.client.post(url)).status_code == 401


async def test_workers_carry_both_name_sets(api: Api, tenant: dict[str, Any]) -> None:
    """R5: public names for the SDKs, raw names for the dashboard's worker page."""
    async with sdk_client(api, tenant["key"]) as client:
        await client.workers.register(
            {"queue_name": "wq", "hostname": "h1", "worker_id": "dash-w", "max_concurrency": 7}
        )
        await client.workers.heartbeat("dash-w", {"current_jobs": 3})
        worker = await client.workers.get("dash-w")
        assert (worker.max_concurrency, worker.current_jobs) == (7, 3)
        assert worker.registered_at is not None
    h = tenant["headers"]
    detail = (await api.client.get("/api/v1/workers/dash-w", headers=h)).json()
    assert (detail["max_concurrent_jobs"], detail["current_job_count"]) == (7, 3)
    assert (detail["max_concurrency"], detail["current_jobs"]) == (7, 3)
    assert detail["created_at"] == detail["registered_at"] and detail["created_at"].endswith("Z")
    [item] = (await api.client.get("/api/v1/workers", headers=h)).json()
    for public, raw in (("max_concurrency", "max_concurrent_jobs"),
                        ("current_jobs", "current_job_count"), ("registered_at", "created_at")):
        assert item[public] == item[raw] == detail[public], (public, raw)


async def test_email_check_alias(api: Api) -> None:
    """R6: older PY SDKs call GET /auth/email/check; same answer as /auth/check-email."""
    async with sdk_client(api, "sk_test_unused_unused") as client:
        new = await client.auth.check_email("nobody@example.com")
        alias: dict[str, Any] = await client._http.get(
            "/auth/email/check", params={"email": "nobody@example.com"}
        )
    assert alias == new.model_dump(exclude_unset=True) or alias == {
        "available": True, "exists": False, "signup_enabled": True, "has_organizations": False,
    }
    assert alias["available"] is True and alias["exists"] is False
    bad = await api.client.get("/api/v1/auth/email/check", params={"email": "not-an-email"})
    assert_error(bad, 400, "VALIDATION_ERROR")
    assert_error(await api.client.get("/api/v1/auth/email/check"), 400, "VALIDATION_ERROR")


async def test_validate_refuses_refresh_tokens(api: Api, tenant: dict[str, Any]) -> None:
    """R12: only access tokens are valid; a refresh token answers `{valid: false}`."""
    async with sdk_client(api, tenant["key"]) as client:
        tokens = await client.auth.login({"api_key": tenant["key"]})
        access = await client.auth.validate({"token": tokens.access_token})
        assert access.valid is True
        refresh = await client.auth.validate({"token": tokens.refresh_token})
        assert refresh.valid is False
    raw = await api.client.post("/api/v1/auth/validate", json={"token": tokens.refresh_token})
    assert raw.status_code == 200
    assert raw.json() == {"valid": False, "error": "Invalid token"}


async def test_null_numbers_mean_the_default(api: Api, tenant: dict[str, Any]) -> None:
    """R13 and its kind: every optional number with a default takes `null` as "the default"."""
    h = tenant["headers"]
    resp = await api.client.post(
        "/api/v1/jobs",
        json={"queue_name": "nq", "payload": {}, "priority": None, "max_retries": None,
              "timeout_seconds": None, "tags": None, "scheduled_at": None},
        headers=h,
    )
    assert resp.status_code == 201, resp.text
    job = await get_job(api, h, resp.json()["id"])
    assert (job["priority"], job["max_retries"], job["timeout_seconds"]) == (0, 3, 300)
    bulk = await api.client.post(
        "/api/v1/jobs/bulk",
        json={"queue_name": "nq", "default_priority": None, "default_max_retries": None,
              "default_timeout_seconds": None, "jobs": [{"payload": 1, "priority": None}]},
        headers=h,
    )
    assert bulk.status_code == 200 and bulk.json()["success_count"] == 1, bulk.text
    bulk_job = await get_job(api, h, bulk.json()["succeeded"][0]["job_id"])
    assert (bulk_job["priority"], bulk_job["max_retries"]) == (0, 3)
    claimed = await api.client.post(
        "/api/v1/jobs/claim",
        json={"queue_name": "nq", "worker_id": "w1", "limit": None, "lease_duration_secs": None},
        headers=h,
    )
    assert claimed.status_code == 200 and len(claimed.json()["jobs"]) == 1, claimed.text
    lease = claimed.json()["jobs"][0]
    beat = await api.client.post(
        f"/api/v1/jobs/{lease['id']}/heartbeat",
        json={"worker_id": "w1", "lease_id": lease["lease_id"], "lease_duration_secs": None},
        headers=h,
    )
    assert beat.status_code == 200, beat.text
    reg = await api.client.post(
        "/api/v1/workers/register",
        json={"queue_name": "nq", "hostname": "h", "worker_id": "nw", "max_concurrency": None},
        headers=h,
    )
    assert reg.status_code == 201, reg.text
    worker = (await api.client.get("/api/v1/workers/nw", headers=h)).json()
    assert worker["max_concurrency"] == 5
    dlq = await api.client.post("/api/v1/jobs/dlq/retry", json={"limit": None}, headers=h)
    assert dlq.status_code == 200 and dlq.json()["retried_count"] == 0, dlq.text
    purge = await api.client.post(
        "/api/v1/jobs/dlq/purge", json={"confirm": True, "limit": None}, headers=h
    )
    assert purge.status_code == 200 and purge.json() == {"purged_count": 0}
    # required numbers still refuse null (422), and the SDK's own create with priority=None works
    assert_error(
        await api.client.put(f"/api/v1/jobs/{resp.json()['id']}/priority", json={"priority": None},
                             headers=h),
        422, "VALIDATION_ERROR",
    )
    async with sdk_client(api, tenant["key"]) as client:
        made = await client.jobs.create({"queue_name": "nq", "payload": {}, "priority": 0})
        assert (await client.jobs.get(made.id)).priority == 0


async def test_unknown_worker_is_404_through_sdk(api: Api, tenant: dict[str, Any]) -> None:
    async with sdk_client(api, tenant["key"]) as client:
        with pytest.raises(NotFoundError):
            await client.workers.get("no-such-worker")
    job_id = await create_job(api, tenant["headers"])
    assert (await claim(api, tenant["headers"]))[0]["id"] == job_id


async def test_new_keys_are_sk_and_issued_sp_keys_keep_working(api: Api, tenant: dict[str, Any]) -> None:
    """R2: new keys `sk_test_` (non-production; `sk_live_` in production, test_api_keys.py);
    `sp_` keys already issued keep authenticating: rows as the earlier schema stored them, one
    with its lookup hash (minted by this service before R2) and one without (older rows)."""
    from spooled_backend.auth import keys

    h = tenant["headers"]
    assert tenant["key"].startswith("sk_test_") and len(tenant["key"]) == len("sk_test_") + 43
    made = (await api.client.post("/api/v1/api-keys", json={"name": "new"}, headers=h)).json()
    assert made["key"].startswith("sk_test_") and made["key_prefix"] == "sk_test_"
    listed = (await api.client.get(f"/api/v1/api-keys/{made['id']}", headers=h)).json()
    assert listed["key_prefix"] == "sk_test_"
    admin_made = await api.create_org()
    assert admin_made["api_key"]["key"].startswith("sk_test_")

    old_hashed = keys.generate_api_key("sp_test_")
    old_bare = keys.generate_api_key("sp_live_")
    async with api.state.pool.acquire() as c:
        for raw, lookup in ((old_hashed, keys.lookup_hash(old_hashed)), (old_bare, None)):
            await c.execute(
                """INSERT INTO api_keys (organization_id, key_hash, key_prefix, lookup_hash, name,
                                         queues)
                   VALUES ($1, $2, $3, $4, 'issued before R2', '{}')""",
                tenant["org_id"], keys.hash_key(raw, 4), raw[:8], lookup,
            )
    for raw in (old_hashed, old_bare):
        async with sdk_client(api, raw) as client:
            job = await client.jobs.create({"queue_name": "legacy-keys", "payload": {}})
            assert (await client.jobs.get(job.id)).queue_name == "legacy-keys"
            tokens = await client.auth.login({"api_key": raw})
            assert tokens.access_token.startswith("eyJ")  # JWTs are still told apart by `eyJ`
        me = await api.client.get("/api/v1/auth/me", headers=api.as_key(tokens.access_token))
        assert me.status_code == 200 and me.json()["organization_id"] == tenant["org_id"]
    async with api.state.pool.acquire() as c:
        backfilled = await c.fetchval(
            "SELECT lookup_hash FROM api_keys WHERE key_prefix = 'sp_live_' AND organization_id = $1",
            tenant["org_id"],
        )
    assert backfilled == keys.lookup_hash(old_bare)
