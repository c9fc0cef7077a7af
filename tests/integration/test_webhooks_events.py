"""Every event of CONTRACT §10.1 reaches the outbox from the path that causes it, in that
path's transaction, and per-job completion webhooks (§10.4) are delivered through it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from spooled_backend.core.context import AuthContext
from spooled_backend.core.events import NoEvents
from spooled_backend.jobs.service import NewJob, create_job as service_create_job
from spooled_backend.webhooks.rules import EVENTS
from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job
from tests.integration.webhook_support import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def subscribe_all(api: Api, tenant: dict[str, Any], url: str) -> str:
    resp = await api.client.post("/api/v1/outgoing-webhooks", headers=tenant["headers"], json={
        "name": "all", "url": url, "events": list(EVENTS)})
    assert resp.status_code == 201, resp.text
    hook_id: str = resp.json()["id"]
    return hook_id


async def events(api: Api, org_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with api.state.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT event, payload FROM outgoing_webhook_deliveries WHERE organization_id = $1 "
            "AND kind = 'subscription' ORDER BY created_at, event", org_id)
    return [(r["event"], r["payload"]["data"]) for r in rows]


async def clear(api: Api) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute("DELETE FROM outgoing_webhook_deliveries")


async def test_job_lifecycle_events(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    await subscribe_all(api, tenant, receiver.url)
    h = tenant["headers"]
    # cancel
    j1 = await create_job(api, h, queue_name="ev")
    assert (await api.client.delete(f"/api/v1/jobs/{j1}", headers=h)).status_code == 204
    # fail to the dead-letter queue (max_retries 0), then retry by hand
    j2 = await create_job(api, h, queue_name="ev", max_retries=0)
    [job] = await claim(api, h, queue="ev")
    assert job["id"] == j2
    resp = await ack(api, h, j2, "fail", worker_id="w1", lease_id=job["lease_id"], error="boom")
    assert resp.status_code == 200
    assert (await api.client.post(f"/api/v1/jobs/{j2}/retry", headers=h)).status_code == 200
    got = await events(api, tenant["org_id"])
    names = [e for e, _ in got]
    assert names == ["job.created", "job.cancelled", "job.created", "job.started",
                     "job.deadlettered", "job.failed", "job.retried"]  # same statement: by name
    data = dict(got)
    assert data["job.cancelled"] == {"job_id": j1, "queue_name": "ev", "status": "cancelled",
                                     "old_status": "pending"}
    assert data["job.started"] == {"job_id": j2, "queue_name": "ev", "worker_id": "w1"}
    assert data["job.failed"] == {"job_id": j2, "queue_name": "ev", "status": "deadletter",
                                  "error": "boom"}
    assert data["job.retried"]["old_status"] == "deadletter"
    # a retryable failure is not `job.failed` (receivers get terminal failures only)
    await clear(api)
    j3 = await create_job(api, h, queue_name="ev2", max_retries=2)
    [job] = await claim(api, h, queue="ev2")
    await ack(api, h, j3, "fail", worker_id="w1", lease_id=job["lease_id"], error="transient")
    assert [e for e, _ in await events(api, tenant["org_id"])] == ["job.created", "job.started"]


async def test_queue_and_worker_events(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    await subscribe_all(api, tenant, receiver.url)
    h = tenant["headers"]
    await create_job(api, h, queue_name="pq")
    await clear(api)
    resp = await api.client.post("/api/v1/queues/pq/pause", json={"reason": "deploy"}, headers=h)
    assert resp.status_code == 200, resp.text
    assert (await api.client.post("/api/v1/queues/pq/resume", headers=h)).status_code == 200
    resp = await api.client.post("/api/v1/workers/register", headers=h, json={
        "queue_name": "pq", "hostname": "host-1", "worker_id": "wk-1"})
    assert resp.status_code == 201, resp.text
    hb = await api.client.post("/api/v1/workers/wk-1/heartbeat", json={"current_jobs": 0}, headers=h)
    assert hb.status_code == 200
    assert (await api.client.post("/api/v1/workers/wk-1/deregister", headers=h)).status_code == 204
    got = await events(api, tenant["org_id"])
    assert got == [
        ("queue.paused", {"queue_name": "pq", "reason": "deploy"}),
        ("queue.resumed", {"queue_name": "pq"}),
        ("worker.registered", {"worker_id": "wk-1", "queue_name": "pq", "hostname": "host-1"}),
        ("worker.deregistered", {"worker_id": "wk-1", "queue_name": "pq", "hostname": "host-1"}),
    ]


async def test_schedule_and_workflow_events(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    """Written by the triggers whatever code path changes the rows (the schedules and workflows
    services fire and finish them; here the rows are changed directly)."""
    await subscribe_all(api, tenant, receiver.url)
    org = tenant["org_id"]
    job_id = await create_job(api, tenant["headers"], queue_name="cron")
    await clear(api)
    async with api.state.pool.acquire() as c:
        sid = await c.fetchval(
            "INSERT INTO schedules (organization_id, name, cron_expression, queue_name, "
            "payload_template) VALUES ($1, 'nightly', '0 0 * * *', 'cron', '{}') RETURNING id", org)
        await c.execute("INSERT INTO schedule_runs (organization_id, schedule_id, job_id, status) "
                        "VALUES ($1, $2, $3, 'completed')", org, sid, job_id)
        wid = await c.fetchval(
            "INSERT INTO workflows (organization_id, name, status, total_jobs) "
            "VALUES ($1, 'etl', 'running', 2) RETURNING id", org)
        await c.execute("UPDATE workflows SET status = 'completed', completed_jobs = 2 WHERE id = $1", wid)
        wid2 = await c.fetchval(
            "INSERT INTO workflows (organization_id, name, status, total_jobs) "
            "VALUES ($1, 'etl2', 'running', 1) RETURNING id", org)
        await c.execute("UPDATE workflows SET status = 'failed', failed_jobs = 1 WHERE id = $1", wid2)
    got = await events(api, org)
    assert got == [
        ("schedule.triggered", {"schedule_id": sid, "job_id": job_id, "queue_name": "cron",
                                "name": "nightly"}),
        ("workflow.completed", {"workflow_id": wid, "name": "etl", "status": "completed",
                                "total_jobs": 2, "completed_jobs": 2, "failed_jobs": 0}),
        ("workflow.failed", {"workflow_id": wid2, "name": "etl2", "status": "failed",
                             "total_jobs": 1, "completed_jobs": 0, "failed_jobs": 1}),
    ]


async def test_other_orgs_events_stay_out(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    await subscribe_all(api, tenant, receiver.url)
    other = await api.create_org()
    await create_job(api, api.as_key(other["api_key"]["key"]), queue_name="theirs")
    assert await events(api, other["organization"]["id"]) == []
    assert await events(api, tenant["org_id"]) == []


async def test_completion_webhook_signed_through_the_outbox(
    api: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    """No subscription at all: the job's own completion webhook still goes out, signed with the
    job's secret; a second job without a secret goes out unsigned; only terminal outcomes."""
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    h = tenant["headers"]
    async with api.state.pool.acquire() as c:
        signed, _ = await service_create_job(c, api.state.settings, auth, NewJob(
            queue_name="cw", payload={}, completion_webhook=receiver.url,
            completion_webhook_secret="job-secret", max_retries=1), NoEvents())
        unsigned, _ = await service_create_job(c, api.state.settings, auth, NewJob(
            queue_name="cw", payload={}, completion_webhook=receiver.url, max_retries=0), NoEvents())
    jobs = {j["id"]: j for j in await claim(api, h, queue="cw", limit=2)}
    await ack(api, h, signed, "fail", worker_id="w1", lease_id=jobs[signed]["lease_id"], error="x")
    async with api.state.pool.acquire() as c:  # a retryable failure sends nothing
        assert await c.fetchval("SELECT count(*) FROM outgoing_webhook_deliveries") == 0
    await ack(api, h, unsigned, "fail", worker_id="w1", lease_id=jobs[unsigned]["lease_id"],
              error="fatal")
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET scheduled_at = now() WHERE id = $1", signed)
    [again] = await claim(api, h, queue="cw")
    await ack(api, h, signed, "complete", worker_id="w1", lease_id=again["lease_id"],
              result={"done": 1})
    await api.state.webhooks.dispatch_once()
    await api.state.webhooks.drain()
    got = {r.json()["data"]["job_id"]: r for r in await receiver.wait_for(2)}
    ok = got[signed]
    assert ok.json()["event"] == "job.completed"
    assert ok.json()["data"] == {"job_id": signed, "queue_name": "cw", "status": "completed",
                                 "result": {"done": 1}}
    ts = ok.headers["x-spooled-timestamp"]
    digest = hmac.new(b"job-secret", f"{ts}.".encode() + ok.body, hashlib.sha256).hexdigest()
    assert ok.headers["x-spooled-signature"] == f"sha256={digest}"
    bad = got[unsigned]
    assert bad.json()["event"] == "job.failed" and bad.json()["data"]["status"] == "deadletter"
    assert bad.json()["data"]["error"] == "fatal"
    assert "x-spooled-signature" not in bad.headers
    async with api.state.pool.acquire() as c:
        rows = await c.fetch("SELECT kind, status FROM outgoing_webhook_deliveries")
    assert [tuple(r) for r in rows] == [("completion", "success")] * 2
