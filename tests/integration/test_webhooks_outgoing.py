"""Outgoing webhooks over REST and the outbox (CONTRACT §7.12, §10): CRUD, events written by
the triggers in the changing transaction, signed deliveries to a local receiver, retries,
auto-disable, manual retry, and the bad receivers of issue 11."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from spooled_backend.webhooks import delivery
from spooled_backend.webhooks.tasks import Dispatcher
from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job
from tests.integration.webhook_support import Receiver

SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def make_hook(api: Api, tenant: dict[str, Any], url: str, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "hook")
    body.setdefault("events", ["job.created", "job.completed"])
    body.setdefault("secret", SECRET)
    resp = await api.client.post(
        "/api/v1/outgoing-webhooks", json={"url": url, **body}, headers=tenant["headers"]
    )
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def outbox(api: Api, org_id: str) -> list[dict[str, Any]]:
    async with api.state.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT * FROM outgoing_webhook_deliveries WHERE organization_id = $1 "
            "ORDER BY created_at, event", org_id,
        )
    return [dict(r) for r in rows]


async def run_dispatch(api: Api) -> None:
    dispatcher: Dispatcher = api.state.webhooks
    await dispatcher.dispatch_once()
    await dispatcher.drain()


def check_signature(headers: dict[str, str], body: bytes, secret: str = SECRET) -> None:
    ts = headers["x-spooled-timestamp"]
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["x-spooled-signature"] == f"sha256={expected}"


async def test_crud_and_sdk_shapes(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    hook = await make_hook(api, tenant, receiver.url, events=["job.created", "job.retried",
                                                              "workflow.failed"], format="slack")
    assert hook["events"] == ["job.created", "job.retried", "workflow.failed"]
    assert hook["format"] == "slack" and hook["enabled"] is True and hook["failure_count"] == 0
    assert "secret" not in hook
    h = tenant["headers"]
    listed = (await api.client.get("/api/v1/outgoing-webhooks", headers=h)).json()
    assert [x["id"] for x in listed] == [hook["id"]]
    # three-state secret
    resp = await api.client.put(f"/api/v1/outgoing-webhooks/{hook['id']}", json={"name": "n2"},
                                headers=h)
    assert resp.status_code == 200 and resp.json()["name"] == "n2"
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT secret FROM outgoing_webhooks WHERE id=$1", hook["id"]) == SECRET
    resp = await api.client.put(f"/api/v1/outgoing-webhooks/{hook['id']}", json={"secret": None},
                                headers=h)
    assert resp.status_code == 200
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT secret FROM outgoing_webhooks WHERE id=$1", hook["id"]) is None
    bad = await api.client.post("/api/v1/outgoing-webhooks", headers=h, json={
        "name": "x", "url": receiver.url, "events": ["job.exploded"]})
    assert bad.status_code == 400 and "job.exploded" in bad.json()["message"]
    bad = await api.client.post("/api/v1/outgoing-webhooks", headers=h, json={
        "name": "x", "url": "ftp://example.com/", "events": ["job.created"]})
    assert bad.status_code == 400
    bad = await api.client.post("/api/v1/outgoing-webhooks", headers=h, json={
        "name": "x", "url": receiver.url, "events": ["job.created"], "format": "xml"})
    assert bad.status_code == 400
    assert (await api.client.get("/api/v1/outgoing-webhooks/nope", headers=h)).status_code == 404
    resp = await api.client.delete(f"/api/v1/outgoing-webhooks/{hook['id']}", headers=h)
    assert resp.status_code == 204
    assert (await api.client.get(f"/api/v1/outgoing-webhooks/{hook['id']}", headers=h)).status_code == 404


async def test_events_written_in_the_changing_transaction(
    api: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    """job.created / started / completed rows appear with the change; nothing for events the
    hook did not subscribe to; a rolled-back change leaves no row."""
    await make_hook(api, tenant, receiver.url,
                    events=["job.created", "job.started", "job.completed", "job.failed"])
    h = tenant["headers"]
    job_id = await create_job(api, h, queue_name="emails")
    jobs = await claim(api, h, queue="emails")
    resp = await ack(api, h, job_id, "complete", worker_id="w1", lease_id=jobs[0]["lease_id"],
                     result={"sent": True})
    assert resp.status_code == 200
    rows = await outbox(api, tenant["org_id"])
    assert [r["event"] for r in rows] == ["job.created", "job.started", "job.completed"]
    done = json.loads(rows[2]["payload"]) if isinstance(rows[2]["payload"], str) else rows[2]["payload"]
    assert done["event"] == "job.completed" and done["id"] == rows[2]["id"]
    assert done["data"] == {"job_id": job_id, "queue_name": "emails", "status": "completed",
                            "result": {"sent": True}}
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)
    # A change that rolls back writes nothing.
    async with api.state.pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        await c.execute("UPDATE jobs SET status = 'cancelled' WHERE id = $1", job_id)
        assert await c.fetchval(
            "SELECT count(*) FROM outgoing_webhook_deliveries WHERE event = 'job.cancelled'") == 0
        await tx.rollback()
    assert len(await outbox(api, tenant["org_id"])) == 3


async def test_delivery_is_signed_and_recorded(
    api: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    hook = await make_hook(api, tenant, receiver.url, events=["job.created"])
    job_id = await create_job(api, tenant["headers"], queue_name="q1")
    await run_dispatch(api)
    [got] = receiver.wait_for(1)
    envelope = got.json()
    assert envelope["event"] == "job.created"
    assert envelope["data"] == {"job_id": job_id, "queue_name": "q1", "priority": 0,
                                "status": "pending"}
    assert got.headers["x-spooled-event"] == "job.created"
    assert got.headers["x-spooled-delivery-attempt"] == "1"
    assert got.headers["user-agent"] == "Spooled-OutgoingWebhook/1.0"
    assert got.headers["content-type"] == "application/json"
    check_signature(got.headers, got.body)
    resp = await api.client.get(f"/api/v1/outgoing-webhooks/{hook['id']}/deliveries",
                                headers=tenant["headers"])
    [d] = resp.json()
    assert d["status"] == "success" and d["status_code"] == 200 and d["attempts"] == 1
    assert d["payload"] == envelope and d["delivered_at"] is not None
    hook_now = (await api.client.get(f"/api/v1/outgoing-webhooks/{hook['id']}",
                                     headers=tenant["headers"])).json()
    assert hook_now["last_status"] == "success" and hook_now["last_triggered_at"] is not None
