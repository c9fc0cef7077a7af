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
    [got] = await receiver.wait_for(1)
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


async def _wait_attempts(db_url: str, delivery_id: str, attempts: int, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the outbox row until `attempts` attempts are recorded (claim released)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            row = await conn.fetchrow(
                "SELECT status, attempts, claim_token, next_attempt_at - now() AS due_in, error "
                "FROM outgoing_webhook_deliveries WHERE id = $1", delivery_id)
            if row["attempts"] >= attempts and row["claim_token"] is None:
                return dict(row)
            assert asyncio.get_running_loop().time() < deadline, dict(row)
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def test_delivery_survives_restarts_between_attempts(
    settings: Any, db_url: str, receiver: Receiver
) -> None:
    """The receiver fails twice then succeeds; the service is stopped and started again after
    each failed attempt. Exactly one successful delivery is recorded, after 3 attempts, each
    signed afresh (own timestamp, attempt header), the envelope unchanged."""
    import asyncpg

    from tests.conftest import _api

    receiver.script = [500, 503]
    settings = settings.model_copy(update={"outgoing_webhook_max_attempts": 5})
    # First life: create the subscription and the job; the running loop makes attempt 1.
    async for api in _api(settings, db_url, run_loops=True):
        org = await api.create_org()
        headers = api.as_key(org["api_key"]["key"])
        resp = await api.client.post("/api/v1/outgoing-webhooks", headers=headers, json={
            "name": "durable", "url": receiver.url, "events": ["job.created"], "secret": SECRET})
        assert resp.status_code == 201
        hook_id = resp.json()["id"]
        await create_job(api, headers, queue_name="durable")
        await receiver.wait_for(1)
        [row] = await outbox(api, org["organization"]["id"])
        delivery_id = row["id"]
        state = await _wait_attempts(db_url, delivery_id, 1)
        assert state["status"] == "pending" and state["error"] == "HTTP 500"
        assert 0 < state["due_in"].total_seconds() <= 1.0  # backoff 1 s
    # Between lives: the retry waits in the database. Let its time come (controlled clock).
    conn = await asyncpg.connect(db_url)
    await conn.execute("UPDATE outgoing_webhook_deliveries SET next_attempt_at = now() WHERE id = $1",
                       delivery_id)
    async for api in _api(settings, db_url, run_loops=True):
        await receiver.wait_for(2)
        state = await _wait_attempts(db_url, delivery_id, 2)
        assert state["status"] == "pending" and state["error"] == "HTTP 503"
        assert 1.0 < state["due_in"].total_seconds() <= 2.0  # backoff 2 s
    await conn.execute("UPDATE outgoing_webhook_deliveries SET next_attempt_at = now() WHERE id = $1",
                       delivery_id)
    async for api in _api(settings, db_url, run_loops=True):
        await receiver.wait_for(3)
        state = await _wait_attempts(db_url, delivery_id, 3)
        assert state["status"] == "success"
        resp = await api.client.get(f"/api/v1/outgoing-webhooks/{hook_id}/deliveries",
                                    headers=headers)
        [d] = resp.json()
        assert d["status"] == "success" and d["attempts"] == 3 and d["error"] is None
    await conn.close()
    got = receiver.received
    assert len(got) == 3
    assert [g.headers["x-spooled-delivery-attempt"] for g in got] == ["1", "2", "3"]
    stamps = [int(g.headers["x-spooled-timestamp"]) for g in got]
    assert stamps == sorted(stamps)  # each attempt signs with the time it was sent
    assert len({g.body for g in got}) == 1  # same envelope every time
    for g in got:
        check_signature(g.headers, g.body)


@pytest.mark.parametrize(
    ("action", "error", "status_code"),
    [
        (500, "HTTP 500", 500),
        ("redirect", "HTTP 302 (redirects are not followed)", 302),
        ("hang", "Request timed out", None),
    ],
)
async def test_bad_receivers_are_recorded_failures(
    api: Api, tenant: dict[str, Any], receiver: Receiver, action: Any, error: str,
    status_code: int | None,
) -> None:
    api.state.webhooks.sender = delivery.Sender(False, timeout_secs=0.5, connect_timeout_secs=0.5)
    receiver.script = [action]
    await make_hook(api, tenant, receiver.url, events=["job.created"])
    await create_job(api, tenant["headers"])
    await run_dispatch(api)
    [row] = await outbox(api, tenant["org_id"])
    assert row["status"] == "pending" and row["attempts"] == 1 and row["claim_token"] is None
    assert row["error"] == error and row["status_code"] == status_code
    assert len(receiver.received) == 1  # the redirect was not followed


async def test_huge_response_is_cut_short(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    receiver.script = ["huge"]
    await make_hook(api, tenant, receiver.url, events=["job.created"])
    await create_job(api, tenant["headers"])
    started = asyncio.get_running_loop().time()
    await run_dispatch(api)
    assert asyncio.get_running_loop().time() - started < 5
    [row] = await outbox(api, tenant["org_id"])
    assert row["status"] == "success" and len(row["response_body"]) == 1024


async def test_retries_exhaust_then_auto_disable_after_20_failed_deliveries(
    api: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    receiver.default = 500
    hook = await make_hook(api, tenant, receiver.url, events=["job.created"])
    settings = api.state.settings
    await create_job(api, tenant["headers"])
    for attempt in range(1, settings.outgoing_webhook_max_attempts + 1):
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE outgoing_webhook_deliveries SET next_attempt_at = now() "
                            "WHERE status = 'pending'")
        await run_dispatch(api)
        [row] = await outbox(api, tenant["org_id"])
        assert row["attempts"] == attempt
    assert row["status"] == "failed" and row["next_attempt_at"] is None
    async with api.state.pool.acquire() as c:
        h = await c.fetchrow("SELECT failure_count, enabled, last_status FROM outgoing_webhooks "
                             "WHERE id = $1", hook["id"])
        assert (h["failure_count"], h["enabled"], h["last_status"]) == (1, True, "failed")
        # 19 failed deliveries so far: still on; the 20th turns it off.
        await c.execute("UPDATE outgoing_webhooks SET failure_count = 19 WHERE id = $1", hook["id"])
        await c.execute("UPDATE outgoing_webhook_deliveries SET status = 'pending', attempts = 4, "
                        "next_attempt_at = now() WHERE webhook_id = $1", hook["id"])
    await run_dispatch(api)
    got = (await api.client.get(f"/api/v1/outgoing-webhooks/{hook['id']}",
                                headers=tenant["headers"])).json()
    assert got["failure_count"] == 20 and got["enabled"] is False
    assert got["last_status"] == "auto_disabled"
    # Disabled: no new deliveries are written.
    await create_job(api, tenant["headers"])
    assert len(await outbox(api, tenant["org_id"])) == 1
    # Manual retry of the failed delivery: succeeds, resets the count.
    receiver.default = 200
    [row] = await outbox(api, tenant["org_id"])
    resp = await api.client.post(f"/api/v1/outgoing-webhooks/{hook['id']}/retry/{row['id']}",
                                 headers=tenant["headers"])
    assert resp.status_code == 200 and resp.json() == {"success": True, "message": "Delivery succeeded"}
    [row] = await outbox(api, tenant["org_id"])
    assert row["status"] == "success" and row["attempts"] == 6
    got = (await api.client.get(f"/api/v1/outgoing-webhooks/{hook['id']}",
                                headers=tenant["headers"])).json()
    assert got["failure_count"] == 0
    again = await api.client.post(f"/api/v1/outgoing-webhooks/{hook['id']}/retry/{row['id']}",
                                  headers=tenant["headers"])
    assert again.status_code == 400
    bad = await api.client.post(f"/api/v1/outgoing-webhooks/{hook['id']}/retry/not-a-uuid",
                                headers=tenant["headers"])
    assert bad.status_code == 400
    # Re-enabling starts the failure count afresh.
    resp = await api.client.put(f"/api/v1/outgoing-webhooks/{hook['id']}", json={"enabled": True},
                                headers=tenant["headers"])
    assert resp.json()["enabled"] is True and resp.json()["failure_count"] == 0


async def test_two_dispatchers_never_send_one_delivery_twice(
    api: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    await make_hook(api, tenant, receiver.url, events=["job.created"])
    resp = await api.client.post("/api/v1/jobs/bulk", headers=tenant["headers"], json={
        "queue_name": "bulk", "jobs": [{"payload": {"i": i}} for i in range(40)]})
    assert resp.status_code == 200
    small = api.state.settings.model_copy(update={"outgoing_webhook_max_concurrent_deliveries": 4})
    first = Dispatcher(api.state.pool, small, poll_interval_secs=0.01)
    second = Dispatcher(api.state.pool, small, poll_interval_secs=0.01)
    await first.start()
    await second.start()
    await receiver.wait_for(40)
    while first.sent + second.sent < 40:
        await asyncio.sleep(0.01)
    await first.stop()
    await second.stop()
    assert first.sent > 0 and second.sent > 0  # both took part, 4 at a time each
    ids = [g.json()["id"] for g in receiver.received]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert first.sent + second.sent == 40
    rows = await outbox(api, tenant["org_id"])
    assert [(r["status"], r["attempts"]) for r in rows] == [("success", 1)] * 40


async def test_test_endpoint(api: Api, tenant: dict[str, Any], receiver: Receiver) -> None:
    hook = await make_hook(api, tenant, receiver.url, events=["job.created"])
    resp = await api.client.post(f"/api/v1/outgoing-webhooks/{hook['id']}/test",
                                 headers=tenant["headers"])
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True and body["status_code"] == 200
    assert isinstance(body["response_time_ms"], int)
    [got] = receiver.received
    doc = got.json()
    assert doc["event"] == "webhook.test" and doc["test"] is True
    assert doc["webhook_id"] == hook["id"] and doc["organization_id"] == tenant["org_id"]
    assert got.headers["user-agent"] == "Spooled-WebhookTest/1.0"
    check_signature(got.headers, got.body)
    receiver.script = [500]
    resp = await api.client.post(f"/api/v1/outgoing-webhooks/{hook['id']}/test",
                                 headers=tenant["headers"])
    assert resp.json()["success"] is False and resp.json()["error"] == "HTTP 500"


@pytest_asyncio.fixture
async def prod_api(db_url: str) -> AsyncIterator[Api]:
    from tests.conftest import _api, make_settings

    async for item in _api(make_settings(db_url, rust_env="production"), db_url):
        yield item


async def test_production_refuses_private_targets_at_create_and_send(prod_api: Api) -> None:
    api = prod_api
    org = await api.create_org()
    headers = api.as_key(org["api_key"]["key"])
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1",
                        org["organization"]["id"])
    for url in ("http://example.com/h", "https://127.0.0.1/h", "https://0x7f.1/h",
                "https://[::ffff:10.0.0.1]/h", "https://169.254.169.254/latest", "https://localhost/"):
        resp = await api.client.post("/api/v1/outgoing-webhooks", headers=headers, json={
            "name": "x", "url": url, "events": ["job.created"]})
        assert resp.status_code == 400, (url, resp.text)
    # A name is accepted at create time; at send time it resolves to a private address and the
    # connection is never made (resolver stub), the attempt recorded as a failure.
    resp = await api.client.post("/api/v1/outgoing-webhooks", headers=headers, json={
        "name": "x", "url": "https://hooks.internal-example.com/h", "events": ["job.created"]})
    assert resp.status_code == 201, resp.text

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "hooks.internal-example.com"
        return ["10.1.2.3"]

    api.state.webhooks.sender = delivery.Sender(True, resolve=resolve)
    await create_job(api, headers)
    await run_dispatch(api)
    [row] = await outbox(api, org["organization"]["id"])
    assert row["status"] == "pending" and row["attempts"] == 1 and row["status_code"] is None
    assert row["error"] == "Webhook target 10.1.2.3 is not allowed (private address)"


async def test_chat_formats_are_rendered_and_signed(
    api: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    await make_hook(api, tenant, receiver.url, events=["job.created"], format="discord")
    job_id = await create_job(api, tenant["headers"], queue_name="chat")
    await run_dispatch(api)
    [got] = await receiver.wait_for(1)
    doc = got.json()
    assert doc["content"] == f"Spooled: job.created ({job_id})"
    assert {"name": "queue_name", "value": "chat", "inline": True} in doc["embeds"][0]["fields"]
    check_signature(got.headers, got.body)
