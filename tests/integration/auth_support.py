"""Helpers for the auth / rate-limit / RLS tests: app instances on a shared database and Redis."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from spooled_backend.config import Settings
from tests.conftest import Api

_ips = itertools.count(1)


@asynccontextmanager
async def instance(
    settings: Settings, db_url: str, customize: Callable[[Any], None] | None = None
) -> AsyncIterator[Api]:
    """One app (its own lifespan: pool, Redis client, limiter, caches) on `db_url`;
    `customize(app)` may add test-only routes before it starts."""
    from spooled_backend.app import create_app

    app = create_app(settings, settings.database_url or db_url, run_loops=False)
    if customize is not None:
        customize(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, state=app.state.services)


def fresh_ip() -> dict[str, str]:
    """A distinct client IP (X-Real-IP, CONTRACT §12.4) so shared-Redis IP buckets never collide
    between tests."""
    n = next(_ips)
    return {"X-Real-IP": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def enterprise_org(api: Api) -> dict[str, Any]:
    """An enterprise org (500 rps) with its key: quotas and the org bucket stay out of the way."""
    created = await api.create_org()
    org_id = created["organization"]["id"]
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1", org_id)
    return {"org_id": org_id, "key": created["api_key"]["key"], "key_id": created["api_key"]["id"]}


async def login(api: Api, key: str) -> dict[str, Any]:
    resp = await api.client.post("/api/v1/auth/login", json={"api_key": key}, headers=fresh_ip())
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data
