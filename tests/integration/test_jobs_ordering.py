"""Which jobs a claim hands out, and in what order (CONTRACT §8.2, §8.6, §8.7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from spooled_backend.scheduler import recovery
from tests.conftest import Api
from tests.integration.jobs_support import claim, create_job, get_job


def _iso(delta_secs: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_secs)).isoformat()


async def _sql(api: Api, sql: str, *args: Any) -> Any:
    async with api.state.pool.acquire() as c:
        return await c.fetchval(sql, *args)


async def test_priority_desc_then_fifo(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ids = [await create_job(api, h, priority=p, payload={"i": i})
           for i, p in enumerate([0, 5, -3, 5, 0, 10, -100, 100])]
    got = [j["id"] for j in await claim(api, h, limit=3)]
    got += [j["id"] for j in await claim(api, h, limit=100)]
    assert got == [ids[7], ids[5], ids[1], ids[3], ids[0], ids[4], ids[2], ids[6]]


async def test_priority_boost_changes_claim_order(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    first = await create_job(api, h)
    second = await create_job(api, h)
    resp = await api.client.put(f"/api/v1/jobs/{second}/priority", json={"priority": 50}, headers=h)
    assert resp.status_code == 200
    assert resp.json() == {"job_id": second, "old_priority": 0, "new_priority": 50}
    assert [j["id"] for j in await claim(api, h, limit=2)] == [second, first]


async def test_scheduled_jobs_only_when_due(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    later = await create_job(api, h, scheduled_at=_iso(3600))
    past = await create_job(api, h, scheduled_at=_iso(-60))
    assert (await get_job(api, h, later))["status"] == "scheduled"
    assert (await get_job(api, h, past))["status"] == "pending"
    assert [j["id"] for j in await claim(api, h, limit=10)] == [past]
    assert await claim(api, h, limit=10) == []
    # due but not yet activated: the claim takes scheduled rows directly
    await _sql(api, "UPDATE jobs SET scheduled_at = now() - interval '1 ms' WHERE id = $1", later)
    assert (await get_job(api, h, later))["status"] == "scheduled"
    assert [j["id"] for j in await claim(api, h)] == [later]


async def test_activation_sweep_moves_due_scheduled_to_pending(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    due = await create_job(api, h, scheduled_at=_iso(3600))
    not_due = await create_job(api, h, scheduled_at=_iso(3600))
    async with api.state.pool.acquire() as c, c.transaction():
        await c.execute("UPDATE jobs SET scheduled_at = now() WHERE id = $1", due)  # boundary: <= now
        assert await recovery.activate_scheduled(c) == 1
    assert (await get_job(api, h, due))["status"] == "pending"
    assert (await get_job(api, h, not_due))["status"] == "scheduled"
    async with api.state.pool.acquire() as c:
        assert await recovery.activate_scheduled(c) == 0


async def test_expired_jobs_are_never_handed_out_and_get_cancelled(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    expired = await create_job(api, h, expires_at=_iso(3600), priority=10)
    expired_sched = await create_job(api, h, expires_at=_iso(3600), scheduled_at=_iso(1800))
    alive = await create_job(api, h, expires_at=_iso(3600))
    busy = await create_job(api, h, queue_name="busy", expires_at=_iso(3600))
    assert (await claim(api, h, queue="busy"))[0]["id"] == busy
    await _sql(api, "UPDATE jobs SET expires_at = now() - interval '1 ms' WHERE id = ANY($1::text[])",
               [expired, expired_sched, busy])
    await _sql(api, "UPDATE jobs SET scheduled_at = now() - interval '1 s' WHERE id = $1", expired_sched)
    assert [j["id"] for j in await claim(api, h, limit=10)] == [alive]
    async with api.state.pool.acquire() as c:
        assert await recovery.expire_jobs(c) == 2
        assert await recovery.expire_jobs(c) == 0
    for job_id in (expired, expired_sched):
        job = await get_job(api, h, job_id)
        assert job["status"] == "cancelled" and job["completed_at"] is not None
        assert job["last_error"] == "Job expired before it was processed"
    assert (await get_job(api, h, busy))["status"] == "processing"  # a running job is left alone
    history = await api.client.get(f"/api/v1/jobs/{expired}/history", headers=h)
    assert [e["event_type"] for e in history.json()] == ["created", "expired"]


async def test_expiry_boundary(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job = await create_job(api, h, expires_at=_iso(3600))
    async with api.state.pool.acquire() as c, c.transaction():
        await c.execute("UPDATE jobs SET expires_at = now() WHERE id = $1", job)
        # a claim in the same instant must not take it (expires_at > now is required)
        from spooled_backend.core.context import AuthContext
        from spooled_backend.core.events import NoEvents
        from spooled_backend.jobs import service

        auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
        assert await service.claim_jobs(c, auth, "q1", "w", 5, 30, NoEvents()) == []
        assert await recovery.expire_jobs(c) == 1


async def test_paused_queue_hands_out_nothing(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    paused = await create_job(api, h, queue_name="paused")
    other = await create_job(api, h, queue_name="open")
    await _sql(api, "INSERT INTO queue_config (organization_id, queue_name, enabled) VALUES ($1, 'paused', false)",
               tenant["org_id"])
    assert await claim(api, h, queue="paused", limit=10) == []
    assert [j["id"] for j in await claim(api, h, queue="open")] == [other]
    await _sql(api, "UPDATE queue_config SET enabled = true WHERE queue_name = 'paused'")
    assert [j["id"] for j in await claim(api, h, queue="paused")] == [paused]


async def test_gated_jobs_are_not_claimed(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h)
    child = await create_job(api, h, parent_job_id=parent, priority=100)
    child_job = await get_job(api, h, child)
    assert child_job["dependencies_met"] is False
    gated = await create_job(api, h, priority=99)
    await _sql(api, "UPDATE jobs SET dependencies_met = false WHERE id = $1", gated)
    assert [j["id"] for j in await claim(api, h, limit=10)] == [parent]
    assert await _sql(api, "SELECT count(*) FROM job_dependencies WHERE job_id = $1 AND depends_on_job_id = $2",
                      child, parent) == 1
    await _sql(api, "UPDATE jobs SET dependencies_met = true WHERE id = ANY($1::text[])", [child, gated])
    assert [j["id"] for j in await claim(api, h, limit=10)] == [child, gated]


async def test_parent_in_other_queue_or_org_is_rejected(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, queue_name="a")
    resp = await api.client.post("/api/v1/jobs", json={"queue_name": "b", "payload": 1, "parent_job_id": parent},
                                 headers=h)
    assert resp.status_code == 400 and resp.json()["code"] == "BAD_REQUEST"
    other = await api.create_org()
    resp = await api.client.post("/api/v1/jobs", json={"queue_name": "a", "payload": 1, "parent_job_id": parent},
                                 headers=api.as_key(other["api_key"]["key"]))
    assert resp.status_code == 400
    # a completed parent leaves the child runnable at once
    lease = (await claim(api, h, queue="a"))[0]["lease_id"]
    await api.client.post(f"/api/v1/jobs/{parent}/complete", json={"worker_id": "w1", "lease_id": lease}, headers=h)
    child = await create_job(api, h, queue_name="a", parent_job_id=parent)
    assert (await get_job(api, h, child))["dependencies_met"] is True
