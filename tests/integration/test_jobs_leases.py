"""Lease fencing (CONTRACT §8.4): stale lease ids, wrong workers, expiry boundary, replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import Conflict, LeaseExpired, NotFound
from spooled_backend.core.events import NoEvents
from spooled_backend.jobs import service
from spooled_backend.scheduler import recovery
from tests.conftest import Api
from tests.integration.jobs_support import RFC3339_Z, ack, assert_error, claim, create_job, get_job


async def _expire(api: Api, job_id: str) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", job_id
        )


async def _make_due(api: Api, job_id: str) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET scheduled_at = now() - interval '1 ms' WHERE id = $1", job_id)


async def test_stale_lease_cannot_ack_after_reclaim(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    first = (await claim(api, h, worker="w1", lease=5))[0]
    old_lease = first["lease_id"]

    # lease timed out but not yet recovered: the holder is told its lease expired
    await _expire(api, job_id)
    for action in ("complete", "fail", "heartbeat"):
        err = assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=old_lease),
                           409, "LEASE_EXPIRED")
        assert "expired" in err["message"].lower()

    # the sweep releases it (retry 1 with backoff), then another worker claims it
    async with api.state.pool.acquire() as c:
        assert await recovery.recover_expired_leases(c) == 1
    released = await get_job(api, h, job_id)
    assert (released["status"], released["retry_count"]) == ("pending", 1)
    assert released["last_error"] == "Lease expired (worker timeout)"
    err = assert_error(await ack(api, h, job_id, "complete", worker_id="w1", lease_id=old_lease),
                       409, "LEASE_EXPIRED")
    assert "expired" in err["message"].lower()
    await _make_due(api, job_id)
    second = (await claim(api, h, worker="w2"))[0]
    assert second["id"] == job_id and second["lease_id"] != old_lease and second["retry_count"] == 1

    before = await get_job(api, h, job_id)
    for action in ("complete", "fail", "heartbeat"):
        err = assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=old_lease),
                           409, "LEASE_EXPIRED")
        assert "does not match the job's current lease" in err["message"]
        # the new holder's worker id with the stale lease: still a lease problem
        err = assert_error(await ack(api, h, job_id, action, worker_id="w2", lease_id=old_lease),
                           409, "LEASE_EXPIRED")
        # the right lease under a wrong worker id: not this worker's job
        assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=second["lease_id"]),
                     404, "NOT_FOUND")
    assert await get_job(api, h, job_id) == before

    done = await ack(api, h, job_id, "complete", worker_id="w2", lease_id=second["lease_id"],
                     result={"by": "w2"})
    assert done.status_code == 200 and done.json() == {"success": True}
    job = await get_job(api, h, job_id)
    assert (job["status"], job["result"], job["assigned_worker_id"]) == ("completed", {"by": "w2"}, "w2")
    async with api.state.pool.acquire() as c:
        events = await c.fetch(
            "SELECT event_type, worker_id FROM job_history WHERE job_id = $1 ORDER BY created_at", job_id
        )
    assert [(e["event_type"], e["worker_id"]) for e in events] == [
        ("created", None), ("claimed", "w1"), ("lease_expired", "w1"), ("claimed", "w2"),
        ("completed", "w2"),
    ]

    # After w2 completed, w1's late ack is still a lost lease (the SDK must not count it as its
    # own success), while w2's replay is the "already completed" conflict.
    for action in ("complete", "fail"):
        err = assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=old_lease),
                           409, "LEASE_EXPIRED")
        assert "does not match" in err["message"]
    replay = assert_error(
        await ack(api, h, job_id, "complete", worker_id="w2", lease_id=second["lease_id"]),
        409, "CONFLICT",
    )
    assert "already completed" in replay["message"]
    assert (await get_job(api, h, job_id))["lease_id"] is None


async def test_heartbeat_extends_the_lease(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    lease = (await claim(api, h, lease=5))[0]["lease_id"]
    resp = await ack(api, h, job_id, "heartbeat", worker_id="w1", lease_id=lease, lease_duration_secs=600)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and RFC3339_Z.match(body["lease_expires_at"])
    expires = datetime.fromisoformat(body["lease_expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=601)
    job = await get_job(api, h, job_id)
    assert job["lease_expires_at"] == body["lease_expires_at"] and job["lease_id"] == lease
    # default lease_duration_secs is 30 when omitted
    resp = await ack(api, h, job_id, "heartbeat", worker_id="w1", lease_id=lease)
    expires = datetime.fromisoformat(resp.json()["lease_expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=25) < expires - datetime.now(UTC) <= timedelta(seconds=31)
    # an expired lease cannot be revived by a heartbeat
    await _expire(api, job_id)
    assert_error(await ack(api, h, job_id, "heartbeat", worker_id="w1", lease_id=lease), 409, "LEASE_EXPIRED")


async def test_boundary_sweeps_take_equal_now_worker_ops_need_strictly_later(api: Api, tenant: dict[str, Any]) -> None:
    """`lease_expires_at == now()`: the job belongs to recovery, not to the worker (§8.4)."""
    h = tenant["headers"]
    job_id = await create_job(api, h)
    lease = (await claim(api, h))[0]["lease_id"]
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    async with api.state.pool.acquire() as c, c.transaction():
        await c.execute("UPDATE jobs SET lease_expires_at = now() WHERE id = $1", job_id)
        for call in (
            service.complete_job(c, auth, job_id, "w1", lease, None, NoEvents()),
            service.fail_job(c, auth, job_id, "w1", lease, "x", NoEvents()),
            service.heartbeat_job(c, auth, job_id, "w1", lease, 30),
        ):
            with pytest.raises(LeaseExpired):
                await call
        assert await recovery.recover_expired_leases(c) == 1
    # one tick later (lease still in the future) the worker wins and recovery finds nothing
    job2 = await create_job(api, h)
    lease2 = (await claim(api, h))[0]["lease_id"]
    async with api.state.pool.acquire() as c, c.transaction():
        await c.execute("UPDATE jobs SET lease_expires_at = now() + interval '1 microsecond' WHERE id = $1", job2)
        assert await recovery.recover_expired_leases(c) == 0
        await service.heartbeat_job(c, auth, job2, "w1", lease2, 30)


async def test_replays_and_terminal_states(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, max_retries=0)
    lease = (await claim(api, h))[0]["lease_id"]
    resp = await ack(api, h, job_id, "fail", worker_id="w1", lease_id=lease, error="fatal")
    assert resp.status_code == 200 and resp.json()["success"] is True
    for action in ("fail", "complete", "heartbeat"):
        err = assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=lease), 409, "CONFLICT")
        assert err["message"] == "Job is already deadletter"
    job2 = await create_job(api, h)
    lease2 = (await claim(api, h))[0]["lease_id"]
    assert (await ack(api, h, job2, "complete", worker_id="w1", lease_id=lease2)).status_code == 200
    for action in ("complete", "fail", "heartbeat"):
        err = assert_error(await ack(api, h, job2, action, worker_id="w1", lease_id=lease2), 409, "CONFLICT")
        assert "already completed" in err["message"]
    # never claimed (pending): no lease can match
    job3 = await create_job(api, h)
    assert_error(await ack(api, h, job3, "complete", worker_id="w1", lease_id=lease2), 409, "LEASE_EXPIRED")


async def test_other_organizations_cannot_ack(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    lease = (await claim(api, h))[0]["lease_id"]
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    for action in ("complete", "fail", "heartbeat"):
        assert_error(await ack(api, oh, job_id, action, worker_id="w1", lease_id=lease), 404, "NOT_FOUND")
    assert_error(await api.client.get(f"/api/v1/jobs/{job_id}", headers=oh), 404, "NOT_FOUND")
    assert (await get_job(api, h, job_id))["status"] == "processing"


async def test_service_errors_are_the_contract_classes(api: Api, tenant: dict[str, Any]) -> None:
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    async with api.state.pool.acquire() as c:
        with pytest.raises(NotFound):
            await service.complete_job(c, auth, "00000000-0000-4000-8000-000000000000", "w", "l", None, NoEvents())
        job_id = await create_job(api, tenant["headers"])
        lease = (await claim(api, tenant["headers"]))[0]["lease_id"]
        await service.complete_job(c, auth, job_id, "w1", lease, [1], NoEvents())
        with pytest.raises(Conflict):
            await service.complete_job(c, auth, job_id, "w1", lease, [1], NoEvents())
