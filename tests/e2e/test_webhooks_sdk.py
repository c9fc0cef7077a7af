"""Webhooks end to end against the real server: the Python SDK's `client.webhooks` and
`client.ingest` calls, and the Node SDK's `webhookIngestion.github/stripe` at wire level (the
npm package is not installable here; the requests are written as CONTRACT §7.13 documents the
Node SDK sending them: JSON body, the client's Bearer key, the provider's signature headers)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from spooled.client import SpooledClient
from spooled.errors import NotFoundError, ValidationError

from tests.e2e.conftest import Tenant
from tests.e2e.helpers import wait_for
from tests.integration.webhook_support import Receiver

SECRET = "e2e-webhook-secret-42"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def verify(headers: dict[str, str], body: bytes, secret: str = SECRET) -> None:
    ts = headers["x-spooled-timestamp"]
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["x-spooled-signature"] == f"sha256={digest}"


def test_sdk_outgoing_webhooks_end_to_end(client: SpooledClient, receiver: Receiver) -> None:
    hook = client.webhooks.create({
        "name": "e2e", "url": receiver.url, "secret": SECRET,
        "events": ["job.created", "job.completed", "job.deadlettered", "queue.paused"],
    })
    assert hook.enabled and hook.format == "json" and hook.failure_count == 0
    assert [h.id for h in client.webhooks.list()] == [hook.id]
    assert client.webhooks.get(hook.id).events == hook.events

    job = client.jobs.create({"queue_name": "e2e-hooks", "payload": {"n": 1}})
    claimed = client.jobs.claim({"queue_name": "e2e-hooks", "worker_id": "w-e2e"})
    client.jobs.complete(job.id, {"worker_id": "w-e2e", "lease_id": claimed.jobs[0].lease_id,
                                  "result": {"ok": 1}})
    client.queues.pause("e2e-hooks", reason="maintenance")
    got = receiver.wait_sync(3)
    by_event = {g.json()["event"]: g for g in got}
    assert set(by_event) == {"job.created", "job.completed", "queue.paused"}
    for g in got:
        verify(g.headers, g.body)
        assert g.headers["x-spooled-event"] == g.json()["event"]
    assert by_event["job.completed"].json()["data"]["result"] == {"ok": 1}
    assert by_event["queue.paused"].json()["data"] == {"queue_name": "e2e-hooks",
                                                       "reason": "maintenance"}

    wait_for(lambda: client.webhooks.get_deliveries(hook.id, {"status": "success"}),
             lambda rows: len(rows) == 3, timeout=10, what="3 successful deliveries")
    page = client.webhooks.get_deliveries(hook.id, {"status": "success", "limit": 2, "offset": 0})
    assert len(page) == 2 and all(d.attempts == 1 and d.status_code == 200 for d in page)
    assert client.webhooks.get_deliveries(hook.id, {"status": "failed"}) == []

    result = client.webhooks.test(hook.id)
    assert result.success and result.status_code == 200 and result.response_time_ms >= 0

    # A failing receiver: the attempt is recorded and retried from the database. Disabling the
    # hook ends the automatic retries (the delivery turns `failed`); a manual retry still sends.
    receiver.default = 500
    client.jobs.create({"queue_name": "e2e-hooks", "payload": {"n": 2}})
    receiver.wait_sync(5)
    wait_for(lambda: [d for d in client.webhooks.get_deliveries(hook.id) if d.error == "HTTP 500"],
             bool, timeout=10, what="a failed attempt")
    assert client.webhooks.update(hook.id, {"enabled": False}).enabled is False
    failed = wait_for(lambda: client.webhooks.get_deliveries(hook.id, {"status": "failed"}),
                      bool, timeout=10, what="the delivery to end failed")
    receiver.default = 200
    retried = client.webhooks.retry_delivery(hook.id, failed[0].id)
    assert retried.success is True
    assert client.webhooks.get_deliveries(hook.id, {"status": "failed"}) == []

    updated = client.webhooks.update(hook.id, {"format": "slack", "secret": None, "name": "chat"})
    assert updated.format == "slack" and updated.name == "chat"
    with pytest.raises(ValidationError):
        client.webhooks.retry_delivery(hook.id, "not-a-uuid")
    client.webhooks.delete(hook.id)
    with pytest.raises(NotFoundError):
        client.webhooks.get(hook.id)


def test_sdk_ingest_custom_and_inbound_log(client: SpooledClient, tenant: Tenant) -> None:
    token = client.organizations.get_webhook_token().webhook_token
    assert token
    first = client.ingest.custom(tenant.org_id, {"queue_name": "ingested", "payload": {"a": 1},
                                                 "event_type": "thing.happened",
                                                 "idempotency_key": "k-1"}, webhook_token=token)
    assert first.queue_name == "ingested" and first.status == "pending" and first.job_id
    again = client.ingest.custom(tenant.org_id, {"queue_name": "ingested", "payload": {"a": 1},
                                                 "idempotency_key": "k-1"}, webhook_token=token)
    assert again.job_id == first.job_id
    log = client.webhooks.list_inbound_deliveries()
    assert [(d.status, d.job_id) for d in log] == [("duplicate", first.job_id),
                                                  ("created", first.job_id)]
    since = datetime.now(UTC) - timedelta(minutes=1)
    created = client.webhooks.list_inbound_deliveries(
        {"status": "created", "since": since, "queue_name": "ingested", "limit": 10, "offset": 0})
    assert [d.event_type for d in created] == ["thing.happened"]
    assert client.jobs.get(first.job_id).payload == {"a": 1}


def _secret(tenant: Tenant, provider: str, secret: str) -> None:
    resp = httpx.put(f"{tenant.base_url}/api/v1/incoming-webhooks/{provider}",
                     json={"secret": secret}, headers={"Authorization": f"Bearer {tenant.key}"})
    assert resp.status_code == 200, resp.text


def test_node_sdk_webhook_ingestion_wire(tenant: Tenant) -> None:
    """`webhookIngestion.github(orgId, payload, {signature, event})` and `.stripe(...)`."""
    _secret(tenant, "github", "gh-e2e-secret-1")
    _secret(tenant, "stripe", "whsec_e2e_secret_1")
    base = f"{tenant.base_url}/api/v1/webhooks/{tenant.org_id}"
    common = {"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json",
              "Accept": "application/json", "User-Agent": "spooled-node/1.0.40"}
    body = json.dumps({"action": "opened", "number": 7}).encode()
    sig = hmac.new(b"gh-e2e-secret-1", body, hashlib.sha256).hexdigest()
    gh = {**common, "X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Event": "pull_request",
          "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    resp = httpx.post(f"{base}/github", content=body, headers=gh)
    assert resp.status_code == 200, resp.text
    assert resp.json()["queue_name"] == "github-pull_request"
    assert httpx.post(f"{base}/github", content=body, headers=gh).json()["created"] is False
    bad = httpx.post(f"{base}/github", content=body, headers={**gh, "X-Hub-Signature-256": "sha256=00"})
    assert bad.status_code == 401

    event = json.dumps({"id": "evt_e2e", "type": "customer.subscription.created",
                        "data": {"object": {"id": "sub_1"}}}).encode()
    t = int(time.time())
    v1 = hmac.new(b"whsec_e2e_secret_1", f"{t}.".encode() + event, hashlib.sha256).hexdigest()
    resp = httpx.post(f"{base}/stripe", content=event,
                      headers={**common, "Stripe-Signature": f"t={t},v1={v1}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["queue_name"] == "stripe-customer-subscription-created"
    stale = httpx.post(f"{base}/stripe", content=event,
                       headers={**common, "Stripe-Signature": f"t={t - 400},v1={v1}"})
    assert stale.status_code == 401
