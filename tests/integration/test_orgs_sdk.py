"""The official SDK (`spooled` 1.6.0, async client) against the control-plane routes, in
process: every call must parse into the SDK's own models (sdk-wire-notes §3.2, §4.3–4.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from spooled import AsyncSpooledClient
from spooled.errors import (
    AuthorizationError,
    NotFoundError,
    QuotaExceededError,
    ServerError,
    ValidationError,
)

from tests.conftest import Api

ADMIN_KEY = "admin-test-key-0123456789"


@asynccontextmanager
async def sdk(
    api: Api, key: str | None = None, admin: bool = False
) -> AsyncIterator[AsyncSpooledClient]:
    """An AsyncSpooledClient whose HTTP goes straight into the in-process app."""
    client = AsyncSpooledClient(
        api_key=key, admin_key=ADMIN_KEY if admin else None, base_url="http://test"
    )
    http = client._http
    http._client = httpx.AsyncClient(
        transport=api.client._transport, headers=http._build_default_headers(), timeout=30
    )
    try:
        yield client
    finally:
        await client.close()


async def unthrottle(api: Api, org_id: str, **extra: Any) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE organizations SET custom_limits = $2 WHERE id = $1",
            org_id,
            {"rate_limit_requests_per_second": 10_000, "rate_limit_burst": 10_000, **extra},
        )


async def test_organizations_through_sdk(api: Api, tenant: dict[str, Any]) -> None:
    async with sdk(api, tenant["key"]) as client:
        created = await client.organizations.create(
            {"name": "SDK Made", "slug": "sdk-made", "billing_email": "sdk@made.example.com"}
        )
        assert created.organization.slug == "sdk-made" and created.api_key.key.startswith(
            "sk_test_"
        )
        orgs = await client.organizations.list()
        assert [o.id for o in orgs] == [tenant["org_id"]]
        org = await client.organizations.get(tenant["org_id"])
        assert org.settings and org.settings["webhook_token"].startswith("whk_")
        updated = await client.organizations.update(
            tenant["org_id"], {"name": "Renamed By SDK", "settings": {"tz": "UTC"}}
        )
        assert updated.name == "Renamed By SDK" and updated.settings["tz"] == "UTC"
        members = await client.organizations.get_members(tenant["org_id"])
        assert members[0].email == "" and members[0].role == "owner"
        usage = await client.organizations.get_usage()
        assert usage.plan == "enterprise" and usage.usage.jobs_today.current == 0
        assert usage.limits.max_jobs_per_day is None
        check = await client.organizations.check_slug("sdk-made")
        assert check.available is False and check.valid is True and check.suggestion
        generated = await client.organizations.generate_slug("Hello World")
        assert generated.slug == "hello-world"
        token = await client.organizations.get_webhook_token()
        rotated = await client.organizations.regenerate_webhook_token()
        assert rotated.webhook_token != token.webhook_token
        with pytest.raises(NotFoundError):
            await client.organizations.get(created.organization.id)
        with pytest.raises(ValidationError):
            await client.organizations.create({"name": "Reserved", "slug": "admin"})


async def test_api_keys_through_sdk(api: Api) -> None:
    created = await api.create_org()
    oid = created["organization"]["id"]
    await unthrottle(api, oid, max_api_keys=3)
    async with sdk(api, created["api_key"]["key"]) as client:
        made = await client.api_keys.create(
            {
                "name": "sdk key",
                "queues": ["emails"],
                "rate_limit": 120,
                "expires_at": "2099-01-01T00:00:00Z",
            }
        )
        assert made.key.startswith("sk_test_") and made.expires_at is not None
        listed = await client.api_keys.list()
        assert [k.name for k in listed] == ["sdk key", "Initial Admin Key"]
        one = await client.api_keys.get(made.id)
        assert one.queues == ["emails"] and one.is_active is True and one.rate_limit == 120
        changed = await client.api_keys.update(made.id, {"name": "renamed", "is_active": False})
        assert changed.name == "renamed" and changed.is_active is False
        await client.api_keys.update(made.id, {"is_active": True})
        await client.api_keys.create({"name": "third"})
        with pytest.raises(QuotaExceededError) as over:
            await client.api_keys.create({"name": "fourth"})
        assert over.value.resource == "api_keys" and over.value.limit == 3
        assert over.value.upgrade_to == "starter"
        await client.api_keys.delete(made.id)
        assert (await client.api_keys.get(made.id)).is_active is False
    async with sdk(api, made.key) as revoked:
        with pytest.raises(Exception) as denied:
            await revoked.jobs.list()
        assert getattr(denied.value, "status_code", None) == 401


async def test_scoped_key_errors_through_sdk(api: Api, tenant: dict[str, Any]) -> None:
    async with sdk(api, tenant["key"]) as client:
        scoped = await client.api_keys.create({"name": "scoped", "queues": ["a"]})
    async with sdk(api, scoped.key) as client:
        with pytest.raises(AuthorizationError):
            await client.api_keys.list()
        with pytest.raises(AuthorizationError):
            await client.organizations.get_usage()
        org = await client.organizations.get(tenant["org_id"])
        assert "webhook_token" not in (org.settings or {})


async def test_admin_through_sdk(api: Api) -> None:
    async with sdk(api, admin=True) as client:
        made = await client.admin.create_organization(
            {
                "name": "Admin Org",
                "slug": "admin-org",
                "plan_tier": "starter",
                "custom_limits": {"max_queues": 4},
                "settings": {"a": 1},
            }
        )
        oid = made.organization.id
        assert made.organization.plan_tier == "starter" and made.api_key.key.startswith("sk_test_")
        orgs = await client.admin.list_organizations({"plan_tier": "starter"})
        assert [o.id for o in orgs] == [oid]
        assert (await client.admin.list_organizations())[0].id == oid
        got = await client.admin.get_organization(oid)
        assert got.custom_limits == {"max_queues": 4}
        patched = await client.admin.update_organization(
            oid, {"plan_tier": "pro", "custom_limits": {}}
        )
        assert patched.plan_tier == "pro" and patched.custom_limits is None
        key = await client.admin.create_api_key(oid, {"name": "ops", "rate_limit": 50})
        assert key.key.startswith("sk_test_")
        await client.admin.reset_usage(oid)
        stats = await client.admin.get_stats()
        assert stats.organizations.total == 1
        plans = await client.admin.list_plans()
        assert [p.tier for p in plans] == ["free", "starter", "pro", "enterprise"]
        await client.admin.delete_organization(oid)
        assert (await client.admin.get_organization(oid)).plan_tier == "deleted"
        await client.admin.delete_organization(oid, hard=True)
        with pytest.raises(NotFoundError):
            await client.admin.get_organization(oid)


async def test_billing_through_sdk(api: Api, tenant: dict[str, Any]) -> None:
    async with sdk(api, tenant["key"]) as client:
        status = await client.billing.get_status()
        assert status.plan_tier == "enterprise" and status.has_stripe_customer is False
        # Stripe not configured: 503 SERVICE_UNAVAILABLE (CONTRACT §21 R9), whatever the URL
        for url in ("https://spooled.cloud/x", "https://elsewhere.example.com/"):
            with pytest.raises(ServerError) as unavailable:
                await client.billing.create_portal({"return_url": url})
            assert unavailable.value.status_code == 503
            assert unavailable.value.code == "SERVICE_UNAVAILABLE"
