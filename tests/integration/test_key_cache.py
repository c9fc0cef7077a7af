"""The in-process API-key cache (auth/service.py KeyRowCache) used by the fast lane: a revoked
key, a changed scope or plan is refused / applied on the very next request on every replica,
with or without the NOTIFY (the cached row is checked in the first round trip)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

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


async def _status(api: Api, key: str, queue: str = "probe") -> int:
    """A hot route (fast lane, cached key) and a FastAPI route must agree."""
    hot = await api.client.post(
        "/api/v1/jobs/claim", json={"queue_name": queue, "worker_id": "w"}, headers=api.as_key(key)
    )
    cold = await api.client.get("/api/v1/jobs/stats", headers=api.as_key(key))
    assert hot.status_code == cold.status_code or 403 in (hot.status_code, cold.status_code), (
        hot.text, cold.text)
    return hot.status_code


async def test_revoked_key_refused_at_once_here_and_elsewhere(
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
    assert await _status(replica, key) == 401  # every other replica too: no window


async def test_refused_at_once_even_when_the_notification_is_lost(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    key_id, key = await _new_key(api, tenant)
    assert await _status(replica, key) == 200
    assert replica.state.listener is not None
    await replica.state.listener.stop()  # the replica misses every NOTIFY from now on
    resp = await api.client.delete(f"/api/v1/api-keys/{key_id}", headers=tenant["headers"])
    assert resp.status_code == 204
    assert replica.state.key_cache.rows._rows  # noqa: SLF001 - still cached: nobody told it
    assert await _status(replica, key) == 401


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
    assert await _status(replica, key) == 401

    # A change made directly in SQL (billing webhook, an operator) applies at once as well.
    assert await _status(replica, tenant["key"]) == 200
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'deleted' WHERE id = $1",
                        tenant["org_id"])
    assert await _status(replica, tenant["key"]) == 401
    assert await _status(api, tenant["key"]) == 401


async def test_scope_change_applies_on_the_next_request(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    key_id, key = await _new_key(api, tenant)
    assert await _status(replica, key, "a") == 200
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE api_keys SET queues = '{b}' WHERE id = $1", key_id)
    assert await _status(replica, key, "a") == 403
    assert await _status(replica, key, "b") == 200


async def test_widened_scope_applies_at_once_without_the_notification(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    """Failing input (a 403 under load): the replica refused a create and a claim in a queue
    the key had just been allowed, deciding on its cached row before any round trip."""
    key_id, key = await _new_key(api, tenant)
    resp = await api.client.put(f"/api/v1/api-keys/{key_id}", json={"queues": ["a"]},
                                headers=tenant["headers"])
    assert resp.status_code == 200, resp.text
    assert await _status(replica, key, "a") == 200
    assert await _status(replica, key, "b") == 403  # cached with scope {a}
    assert replica.state.listener is not None
    await replica.state.listener.stop()  # the replica misses the NOTIFY of the change
    resp = await api.client.put(f"/api/v1/api-keys/{key_id}", json={"queues": ["a", "b"]},
                                headers=tenant["headers"])
    assert resp.status_code == 200, resp.text
    created = await replica.client.post("/api/v1/jobs", json={"queue_name": "b", "payload": {}},
                                        headers=replica.as_key(key))
    assert created.status_code == 201, created.text
    claimed = await replica.client.post("/api/v1/jobs/claim",
                                        json={"queue_name": "b", "worker_id": "w"},
                                        headers=replica.as_key(key))
    assert claimed.status_code == 200, claimed.text
    assert [j["id"] for j in claimed.json()["jobs"]] == [created.json()["id"]]
    assert await _status(replica, key, "c") == 403  # still refused outside the new scope


async def test_notification_drops_the_cached_row_on_other_replicas(
    api: Api, replica: Api, tenant: dict[str, Any]
) -> None:
    """The NOTIFY path: the other replica's entry is gone within a bounded time (measured)."""
    key_id, key = await _new_key(api, tenant)
    assert await _status(replica, key) == 200
    rows = replica.state.key_cache.rows
    assert any(r["id"] == key_id for _, r in rows._rows.values())  # noqa: SLF001
    started = time.perf_counter()
    resp = await api.client.delete(f"/api/v1/api-keys/{key_id}", headers=tenant["headers"])
    assert resp.status_code == 204
    while any(r["id"] == key_id for _, r in rows._rows.values()):  # noqa: SLF001
        assert time.perf_counter() - started < 5.0
        await asyncio.sleep(0.001)


async def test_cached_key_needs_no_lookup(api: Api, tenant: dict[str, Any]) -> None:
    assert await _status(api, tenant["key"]) == 200
    async with api.state.pool.acquire() as c:
        # Break the lookup: a cached key still authenticates on the fast lane...
        await c.execute("ALTER TABLE api_keys RENAME COLUMN lookup_hash TO lookup_hash_x")
        try:
            resp = await api.client.post(
                "/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w"},
                headers=tenant["headers"],
            )
            assert resp.status_code == 200, resp.text
        finally:
            await c.execute("ALTER TABLE api_keys RENAME COLUMN lookup_hash_x TO lookup_hash")
