"""Cancel, priority boost, stats, batch status, history (CONTRACT §7.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import ack, assert_error, claim, create_job, get_job

MISSING = "00000000-0000-4000-8000-000000000000"


async def test_cancel_only_pending_or_scheduled(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    pending = await create_job(api, h)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = await create_job(api, h, scheduled_at=later)
    for job_id in (pending, scheduled):
        resp = await api.client.delete(f"/api/v1/jobs/{job_id}", headers=h)
        assert resp.status_code == 204 and resp.content == b""
        job = await get_job(api, h, job_id)
        assert job["status"] == "cancelled" and job["completed_at"] is not None
    processing = await create_job(api, h)
    lease = (await claim(api, h))[0]["lease_id"]
    err = assert_error(await api.client.delete(f"/api/v1/jobs/{processing}", headers=h), 409, "CONFLICT")
    assert "processing" in err["message"]
    assert (await get_job(api, h, processing))["status"] == "processing"
    await ack(api, h, processing, "complete", worker_id="w1", lease_id=lease)
    for job_id in (pending, processing):  # cancelled, completed
        assert_error(await api.client.delete(f"/api/v1/jobs/{job_id}", headers=h), 409, "CONFLICT")
    assert_error(await api.client.delete(f"/api/v1/jobs/{MISSING}", headers=h), 404, "NOT_FOUND")
    # a cancelled job is never claimed
    assert await claim(api, h, limit=10) == []
    history = (await api.client.get(f"/api/v1/jobs/{pending}/history", headers=h)).json()
    assert [e["event_type"] for e in history] == ["created", "cancelled"]


async def test_priority_boost_rules(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, priority=-5)
    resp = await api.client.put(f"/api/v1/jobs/{job_id}/priority", json={"priority": 100}, headers=h)
    assert resp.json() == {"job_id": job_id, "old_priority": -5, "new_priority": 100}
    resp = await api.client.put(f"/api/v1/jobs/{job_id}/priority", json={"priority": -100}, headers=h)
    assert resp.json() == {"job_id": job_id, "old_priority": 100, "new_priority": -100}
    assert (await get_job(api, h, job_id))["priority"] == -100
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = await create_job(api, h, scheduled_at=later)
    resp = await api.client.put(f"/api/v1/jobs/{scheduled}/priority", json={"priority": 3}, headers=h)
    assert resp.json() == {"job_id": scheduled, "old_priority": 0, "new_priority": 3}
    await claim(api, h)
    assert_error(await api.client.put(f"/api/v1/jobs/{job_id}/priority", json={"priority": 1}, headers=h),
                 404, "NOT_FOUND")
    assert (await get_job(api, h, job_id))["priority"] == -100
    assert_error(await api.client.put(f"/api/v1/jobs/{MISSING}/priority", json={"priority": 1}, headers=h),
                 404, "NOT_FOUND")


async def test_stats_counts_every_status(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    empty = await api.client.get("/api/v1/jobs/stats", headers=h)
    assert empty.json() == {"pending": 0, "scheduled": 0, "processing": 0, "completed": 0, "failed": 0,
                            "deadletter": 0, "cancelled": 0, "total": 0}
    for _ in range(3):
        await create_job(api, h)
    await create_job(api, h, queue_name="other")
    await create_job(api, h, scheduled_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    done = (await claim(api, h))[0]
    await ack(api, h, done["id"], "complete", worker_id="w1", lease_id=done["lease_id"])
    dead_id = await create_job(api, h, max_retries=0, priority=9)
    dead = (await claim(api, h))[0]
    assert dead["id"] == dead_id
    await ack(api, h, dead_id, "fail", worker_id="w1", lease_id=dead["lease_id"])
    await claim(api, h)  # one processing
    await api.client.delete(f"/api/v1/jobs/{await create_job(api, h)}", headers=h)
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET status = 'failed' WHERE id = (SELECT id FROM jobs WHERE status = 'pending'"
                        " AND queue_name = 'q1' LIMIT 1)")
    stats = (await api.client.get("/api/v1/jobs/stats", headers=h)).json()
    assert stats == {"pending": 1, "scheduled": 1, "processing": 1, "completed": 1, "failed": 1,
                     "deadletter": 1, "cancelled": 1, "total": 7}
    assert all(type(v) is int for v in stats.values())
    for param in ("queue_name", "queue"):
        other = (await api.client.get(f"/api/v1/jobs/stats?{param}=other", headers=h)).json()
        assert other["pending"] == 1 and other["total"] == 1
    # another organization sees none of it
    org = await api.create_org()
    assert (await api.client.get("/api/v1/jobs/stats", headers=api.as_key(org["api_key"]["key"]))).json()["total"] == 0


async def test_batch_status(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    a = await create_job(api, h)
    b = await create_job(api, h, queue_name="qb")
    theirs = await create_job(api, api.as_key((await api.create_org())["api_key"]["key"]))
    resp = await api.client.get(f"/api/v1/jobs/status?ids={a},{MISSING},%20{b}%20,{theirs},junk,", headers=h)
    assert resp.status_code == 200
    rows = sorted(resp.json(), key=lambda r: r["id"] == b)
    assert [r["id"] for r in rows] == [a, b]
    assert set(rows[0]) == {"id", "status", "queue_name", "retry_count", "created_at", "completed_at"}
    assert (rows[1]["status"], rows[1]["queue_name"], rows[1]["retry_count"], rows[1]["completed_at"]) == (
        "pending", "qb", 0, None)
    assert (await api.client.get("/api/v1/jobs/status?ids=", headers=h)).json() == []
    assert (await api.client.get("/api/v1/jobs/status", headers=h)).json() == []
    hundred = ",".join([a] * 99 + [b])
    assert len((await api.client.get(f"/api/v1/jobs/status?ids={hundred}", headers=h)).json()) == 2
    too_many = ",".join([a] * 101)
    assert_error(await api.client.get(f"/api/v1/jobs/status?ids={too_many}", headers=h), 400, "BAD_REQUEST")


async def test_history_paging(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, max_retries=5)
    for _ in range(3):
        lease = (await claim(api, h, worker="wx"))[0]["lease_id"]
        resp = await ack(api, h, job_id, "fail", worker_id="wx", lease_id=lease, error="oops")
        assert resp.status_code == 200
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE jobs SET scheduled_at = now() - interval '1 ms' WHERE id = $1", job_id)
    full = await api.client.get(f"/api/v1/jobs/{job_id}/history", headers=h)
    events = full.json()
    assert [e["event_type"] for e in events] == ["created"] + ["claimed", "retry_scheduled"] * 3
    assert full.headers["x-has-more"] == "false"
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)
    assert events[1]["worker_id"] == "wx" and events[0]["worker_id"] is None
    assert events[2]["details"]["error"] == "oops" and events[2]["details"]["retry_count"] == 1

    page1 = await api.client.get(f"/api/v1/jobs/{job_id}/history?limit=3", headers=h)
    page2 = await api.client.get(f"/api/v1/jobs/{job_id}/history?limit=3&offset=3", headers=h)
    page3 = await api.client.get(f"/api/v1/jobs/{job_id}/history?limit=3&offset=6", headers=h)
    assert [p.headers["x-has-more"] for p in (page1, page2, page3)] == ["true", "true", "false"]
    assert [e["id"] for p in (page1, page2, page3) for e in p.json()] == [e["id"] for e in events]
    exact = await api.client.get(f"/api/v1/jobs/{job_id}/history?limit=7", headers=h)
    assert len(exact.json()) == 7 and exact.headers["x-has-more"] == "false"
    desc = await api.client.get(f"/api/v1/jobs/{job_id}/history?order_dir=DESC&limit=2", headers=h)
    assert [e["id"] for e in desc.json()] == [events[-1]["id"], events[-2]["id"]]
    assert desc.headers["x-has-more"] == "true"
    beyond = await api.client.get(f"/api/v1/jobs/{job_id}/history?offset=100", headers=h)
    assert beyond.json() == [] and beyond.headers["x-has-more"] == "false"
    big = await api.client.get(f"/api/v1/jobs/{job_id}/history?limit=100000", headers=h)
    assert len(big.json()) == 7
    assert_error(await api.client.get(f"/api/v1/jobs/{MISSING}/history", headers=h), 404, "NOT_FOUND")
    other = api.as_key((await api.create_org())["api_key"]["key"])
    assert_error(await api.client.get(f"/api/v1/jobs/{job_id}/history", headers=other), 404, "NOT_FOUND")
