"""The in-process API-key cache (auth/service.py KeyRowCache): a revoked key is refused at once
on the replica that revoked it and within 1 s on every other, with or without the NOTIFY."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from spooled_backend.auth.service import KEY_ROW_MAX_AGE_SECS
from spooled_backend.config import Settings
from tests.conftest import Api, _api


@pytest_asyncio.fixture
async def replica(settings: Settings, db_url: str) -> AsyncIterator[Api]:
    """A second server process on the same database (its own caches and listener)."""
    async for item in _api(settings, db_url):
        yield item


async def _new_key(api: Api, tenant: dict[str, Any]) -> tuple[str, str]:
    resp = await api.client.post("/api/v1/api-keys", json={"name": "k"}, headers=tenant["headers"])
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.json()["key"]


async def _status(api: Api, key: str) -> int:
    resp = await api.client.get("/api/v1/jobs/stats", headers=api.as_key(key))
    return resp.status_code


async def _refused_after(api: Api, key: str, limit: float = 3.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if await _status(api, key) == 401:
            return time.perf_counter() - started
        await asyncio.sleep(0.002)
    raise AssertionError("key still accepted")


async def test_revoked_key_refused_at_once_here_and_within_1s_elsewhere(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    key_id, key = await _new_key(api, tenant)
    assert await _status(api, key) == 200
    assert await _status(replica, key) == 200  # both caches hold the row now
    assert replica.state.key_cache.rows.get(
        next(iter(replica.state.key_cache.rows._rows))  # noqa: SLF001
    ) is not None

    resp = await api.client.delete(f"/api/v1/api-keys/{key_id}", headers=tenant["headers"])
    assert resp.status_code == 204
    assert await _status(api, key) == 401  # the revoking replica: the very next request
    window = await _refused_after(replica, key)
    assert window < 1.0, window
    # Through the NOTIFY it is far below the 1 s bound (measured: a few ms).
    assert window < 0.5, window


async def test_refused_within_1s_even_when_the_notification_is_lost(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    key_id, key = await _new_key(api, tenant)
    assert await _status(replica, key) == 200
    assert replica.state.listener is not None
    await replica.state.listener.stop()  # the replica misses every NOTIFY from now on
    started = time.perf_counter()
    resp = await api.client.delete(f"/api/v1/api-keys/{key_id}", headers=tenant["headers"])
    assert resp.status_code == 204
    window = await _refused_after(replica, key)
    assert time.perf_counter() - started <= KEY_ROW_MAX_AGE_SECS + 0.3
    assert window <= KEY_ROW_MAX_AGE_SECS + 0.3


async def test_deactivated_and_plan_changes_reach_other_replicas(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    key_id, key = await _new_key(api, tenant)
    assert await _status(replica, key) == 200
    resp = await api.client.put(
        f"/api/v1/api-keys/{key_id}", json={"is_active": False}, headers=tenant["headers"]
    )
    assert resp.status_code == 200, resp.text
    assert await _status(api, key) == 401
    assert await _refused_after(replica, key) < 0.5

    # A plan change made directly in SQL (billing webhook, admin) is pushed too.
    assert await _status(replica, tenant["key"]) == 200
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'deleted' WHERE id = $1",
                        tenant["org_id"])
    assert await _refused_after(replica, tenant["key"]) < 0.5
    assert await _refused_after(api, tenant["key"]) < 0.5


async def test_cached_key_needs_no_lookup(api: Api, tenant: dict[str, Any]) -> None:
    assert await _status(api, tenant["key"]) == 200
    async with api.state.pool.acquire() as c:
        # Make the stored row unreadable for the lookup: a cached key still authenticates...
        await c.execute("ALTER TABLE api_keys RENAME COLUMN lookup_hash TO lookup_hash_x")
        try:
            assert await _status(api, tenant["key"]) == 200
        finally:
            await c.execute("ALTER TABLE api_keys RENAME COLUMN lookup_hash_x TO lookup_hash")
