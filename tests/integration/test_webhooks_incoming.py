"""Incoming webhooks into jobs (CONTRACT §7.13, §11): custom token, GitHub and Stripe
signatures with per-organization secrets, replays, the inbound log, and bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from tests.conftest import Api

GH_SECRET = "gh-secret-0123456789"
ST_SECRET = "whsec_stripe_0123456789"


async def webhook_token(api: Api, tenant: dict[str, Any]) -> str:
    resp = await api.client.get("/api/v1/organizations/webhook-token", headers=tenant["headers"])
    token: str = resp.json()["webhook_token"]
    return token


async def log(api: Api, tenant: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    resp = await api.client.get("/api/v1/webhooks/deliveries", params=params,
                                headers=tenant["headers"])
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()
    return rows


async def set_secret(api: Api, tenant: dict[str, Any], provider: str, secret: str) -> None:
    resp = await api.client.put(f"/api/v1/incoming-webhooks/{provider}", json={"secret": secret},
                                headers=tenant["headers"])
    assert resp.status_code == 200, resp.text


async def test_custom_ingest_creates_job_and_dedupes(api: Api, tenant: dict[str, Any]) -> None:
    token = await webhook_token(api, tenant)
    hook = await api.client.post("/api/v1/outgoing-webhooks", headers=tenant["headers"], json={
        "name": "h", "url": "http://127.0.0.1:9/h", "events": ["job.created"]})
    assert hook.status_code == 201
    url = f"/api/v1/webhooks/{tenant['org_id']}/custom"
    body = {"queue_name": "incoming", "event_type": "order.paid", "payload": {"order": 7},
            "idempotency_key": "order-7", "priority": 5}
    # The client's own Bearer rides along and is ignored.
    headers = {"X-Webhook-Token": token, **tenant["headers"]}
    first = await api.client.post(url, json=body, headers=headers)
    assert first.status_code == 200, first.text
    job = first.json()
    assert job["queue_name"] == "incoming" and job["status"] == "pending" and job["created"]
    again = await api.client.post(url, json=body, headers=headers)
    assert again.json()["job_id"] == job["job_id"] and again.json()["created"] is False
    got = (await api.client.get(f"/api/v1/jobs/{job['job_id']}", headers=tenant["headers"])).json()
    assert got["payload"] == {"order": 7} and got["priority"] == 5
    async with api.state.pool.acquire() as c:  # job.created says where the job came from
        [data] = await c.fetch("SELECT payload -> 'data' AS d FROM outgoing_webhook_deliveries")
    assert data["d"] == {"job_id": job["job_id"], "queue_name": "incoming", "priority": 5,
                         "status": "pending", "source": "incoming_webhook"}
    rows = await log(api, tenant)
    assert [r["status"] for r in rows] == ["duplicate", "created"]
    assert rows[1] == {"id": rows[1]["id"], "provider": "custom", "event_type": "order.paid",
                       "matched_queue": "incoming", "job_id": job["job_id"], "status": "created",
                       "created_at": rows[1]["created_at"]}
    assert [r["status"] for r in await log(api, tenant, status="created")] == ["created"]
    assert await log(api, tenant, queue_name="other") == []
    assert len(await log(api, tenant, since="2000-01-01T00:00:00+00:00", limit=1)) == 1


async def test_custom_ingest_bad_input(api: Api, tenant: dict[str, Any]) -> None:
    token = await webhook_token(api, tenant)
    url = f"/api/v1/webhooks/{tenant['org_id']}/custom"
    ok = {"queue_name": "incoming", "payload": {}}
    cases: list[tuple[dict[str, str], Any, int, str]] = [
        ({}, json.dumps(ok), 401, "AUTHENTICATION_FAILED"),
        ({"X-Webhook-Token": token + "x"}, json.dumps(ok), 401, "AUTHENTICATION_FAILED"),
        ({"X-Webhook-Token": token}, "{not json", 400, "INVALID_JSON"),
        ({"X-Webhook-Token": token}, "", 400, "INVALID_JSON"),
        ({"X-Webhook-Token": token}, json.dumps({"queue_name": "admin", "payload": 1}), 400,
         "VALIDATION_ERROR"),
        ({"X-Webhook-Token": token}, json.dumps({"queue_name": "a..b", "payload": 1}), 400,
         "VALIDATION_ERROR"),
        ({"X-Webhook-Token": token}, json.dumps({"queue_name": "q"}), 422, "VALIDATION_ERROR"),
        ({"X-Webhook-Token": token}, json.dumps([1, 2]), 422, "VALIDATION_ERROR"),
    ]
    for headers, raw, status, code in cases:
        resp = await api.client.post(url, content=raw,
                                     headers={"Content-Type": "application/json", **headers})
        assert resp.status_code == status, (headers, raw, resp.text)
        assert resp.json()["code"] == code
    rows = await log(api, tenant, status="rejected")
    assert len(rows) == len(cases)
    assert all(r["job_id"] is None and r["error"] for r in rows)
    unknown = await api.client.post("/api/v1/webhooks/00000000-0000-4000-8000-000000000000/custom",
                                    json=ok, headers={"X-Webhook-Token": token})
    assert unknown.status_code == 404
    # A cleared token refuses everything.
    resp = await api.client.post("/api/v1/organizations/webhook-token/clear", json={"confirm": True},
                                 headers=tenant["headers"])
    if resp.status_code == 200:
        refused = await api.client.post(url, json=ok, headers={"X-Webhook-Token": token})
        assert refused.status_code == 401
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET settings = settings - 'webhook_token' WHERE id = $1",
                        tenant["org_id"])
    refused = await api.client.post(url, json=ok, headers={"X-Webhook-Token": token})
    assert refused.status_code == 401
    assert await api.client.get("/api/v1/jobs", headers=tenant["headers"]) is not None
    jobs = (await api.client.get("/api/v1/jobs", headers=tenant["headers"])).json()
    assert jobs == []


def github_headers(body: bytes, event: str = "push", delivery: str = "d-1",
                   secret: str = GH_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}",
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}


async def test_github_ingest(api: Api, tenant: dict[str, Any]) -> None:
    url = f"/api/v1/webhooks/{tenant['org_id']}/github"
    # Exact bytes: odd spacing and key order must verify as sent.
    body = b'{ "ref":"refs/heads/main",  "zen":"Keep it simple." }'
    refused = await api.client.post(url, content=body, headers=github_headers(body))
    assert refused.status_code == 401 and "secret" in refused.json()["message"]
    await set_secret(api, tenant, "github", GH_SECRET)
    resp = await api.client.post(url, content=body, headers=github_headers(body))
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["queue_name"] == "github-push" and job["created"] is True
    got = (await api.client.get(f"/api/v1/jobs/{job['job_id']}", headers=tenant["headers"])).json()
    assert got["payload"] == {"ref": "refs/heads/main", "zen": "Keep it simple."}
    # The same delivery verified twice makes one job.
    replay = await api.client.post(url, content=body, headers=github_headers(body))
    assert replay.json()["job_id"] == job["job_id"] and replay.json()["created"] is False
    # Wrong / missing signatures, a tampered body, a bad JSON body behind a good signature.
    bad = [
        (body, {**github_headers(body), "X-Hub-Signature-256": "sha256=" + "0" * 64}),
        (body, {k: v for k, v in github_headers(body).items() if k != "X-Hub-Signature-256"}),
        (body + b" ", github_headers(body)),
        (body, github_headers(body, secret="another-secret")),
    ]
    for raw, headers in bad:
        r = await api.client.post(url, content=raw, headers=headers)
        assert r.status_code == 401, r.text
    notjson = b"payload=%7B%7D"
    r = await api.client.post(url, content=notjson, headers=github_headers(notjson, delivery="d-2"))
    assert r.status_code == 400
    statuses = [(x["status"], x["event_type"]) for x in await log(api, tenant)]
    assert statuses.count(("created", "push")) == 1 and statuses.count(("duplicate", "push")) == 1
    assert statuses.count(("rejected", "push")) == 6
    listed = (await api.client.get("/api/v1/incoming-webhooks", headers=tenant["headers"])).json()
    assert [(x["provider"], x["configured"]) for x in listed] == [("github", True), ("stripe", False)]
    assert "secret" not in json.dumps(listed).replace('"provider"', "")


def stripe_headers(body: bytes, t: int | None = None, secret: str = ST_SECRET) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"}


async def test_stripe_ingest(api: Api, tenant: dict[str, Any]) -> None:
    await set_secret(api, tenant, "stripe", ST_SECRET)
    url = f"/api/v1/webhooks/{tenant['org_id']}/stripe"
    event = {"id": "evt_123", "type": "invoice.paid", "data": {"object": {"id": "in_1", "amount": 5}}}
    body = json.dumps(event).encode()
    resp = await api.client.post(url, content=body, headers=stripe_headers(body))
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["queue_name"] == "stripe-invoice-paid" and job["created"]
    got = (await api.client.get(f"/api/v1/jobs/{job['job_id']}", headers=tenant["headers"])).json()
    assert got["payload"] == {"id": "in_1", "amount": 5} and got["idempotency_key"] == "evt_123"
    # Stripe retries the same event with a new signature: still one job.
    replay = await api.client.post(url, content=body, headers=stripe_headers(body, int(time.time()) - 5))
    assert replay.json() == {**job, "created": False}
    now = int(time.time())
    for headers in (stripe_headers(body, now - 301), stripe_headers(body, now + 120),
                    stripe_headers(body, secret="whsec_other"), {"Content-Type": "application/json"}):
        r = await api.client.post(url, content=body, headers=headers)
        assert r.status_code == 401, r.text
    nodata = json.dumps({"id": "evt_9", "type": "x.y"}).encode()
    r = await api.client.post(url, content=nodata, headers=stripe_headers(nodata))
    assert r.status_code == 400
    delete = await api.client.delete("/api/v1/incoming-webhooks/stripe", headers=tenant["headers"])
    assert delete.status_code == 204
    r = await api.client.post(url, content=body, headers=stripe_headers(body))
    assert r.status_code == 401


async def test_ingest_quota_and_scoped_keys(api: Api) -> None:
    org = await api.create_org()
    org_id, key = org["organization"]["id"], org["api_key"]["key"]
    headers = api.as_key(key)
    token = (await api.client.get("/api/v1/organizations/webhook-token", headers=headers)).json()[
        "webhook_token"]
    url = f"/api/v1/webhooks/{org_id}/custom"
    # free plan: 10 active jobs; ingestion names new queues freely (not charged to max_queues)
    for i in range(10):
        r = await api.client.post(url, json={"queue_name": f"q{i}", "payload": i},
                                  headers={"X-Webhook-Token": token})
        assert r.status_code == 200, r.text
    r = await api.client.post(url, json={"queue_name": "q0", "payload": 0},
                              headers={"X-Webhook-Token": token})
    assert r.status_code == 429 and r.json()["code"] == "QUOTA_EXCEEDED"
    rows = (await api.client.get("/api/v1/webhooks/deliveries?status=rejected", headers=headers)).json()
    assert len(rows) == 1 and "active" in rows[0]["error"]
    big = await api.client.post(url, json={"queue_name": "q0", "payload": "x" * 70000},
                                headers={"X-Webhook-Token": token})
    assert big.status_code == 413
    created = await api.client.post("/api/v1/api-keys", headers=headers,
                                    json={"name": "scoped", "queues": ["q0"]})
    scoped = api.as_key(created.json()["key"])
    assert (await api.client.get("/api/v1/webhooks/deliveries", headers=scoped)).status_code == 403
    assert (await api.client.get("/api/v1/outgoing-webhooks", headers=scoped)).status_code == 403
    assert (await api.client.put("/api/v1/incoming-webhooks/github", json={"secret": "x" * 10},
                                 headers=scoped)).status_code == 403


@pytest.mark.parametrize("status", ["bogus"])
async def test_inbound_log_filters_validated(api: Api, tenant: dict[str, Any], status: str) -> None:
    r = await api.client.get(f"/api/v1/webhooks/deliveries?status={status}", headers=tenant["headers"])
    assert r.status_code == 400
    r = await api.client.get("/api/v1/webhooks/deliveries?since=yesterday", headers=tenant["headers"])
    assert r.status_code == 400


async def test_oversized_body_is_refused_and_logged(api: Api, tenant: dict[str, Any]) -> None:
    """Over 5 MiB: a declared Content-Length is refused (413) by the body-limit middleware before
    any route runs; a chunked body is refused while it is read, and that attempt is logged."""
    token = await webhook_token(api, tenant)
    url = f"/api/v1/webhooks/{tenant['org_id']}/custom"
    headers = {"X-Webhook-Token": token, "Content-Type": "application/json"}
    raw = b'{"queue_name":"q","payload":"' + b"x" * (6 * 1024 * 1024) + b'"}'
    assert (await api.client.post(url, content=raw, headers=headers)).status_code == 413

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(raw), 65536):
            yield raw[i:i + 65536]

    resp = await api.client.post(url, content=chunks(), headers=headers)
    assert resp.status_code == 413
    [row] = await log(api, tenant)
    assert row["status"] == "rejected" and "exceeds" in row["error"]
