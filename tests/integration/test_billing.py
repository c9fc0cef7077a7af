"""Billing (CONTRACT §7.4): status, portal error paths and success through the official stripe
library against a local Stripe stand-in, and the signed, exactly-once billing webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import pytest_asyncio
import structlog

from spooled_backend.billing import webhook
from spooled_backend.config import Settings
from spooled_backend.observability.logging import build_processors
from tests.conftest import Api, _api, make_settings

SECRET = "whsec_test_0123456789abcdef"
WEBHOOK = "/api/v1/billing/webhook"


class FakeStripe:
    """Answers POST /v1/billing_portal/sessions like Stripe does; records the form it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                outer.requests.append(
                    {"path": self.path, "auth": self.headers.get("authorization"), "form": form}
                )
                body = json.dumps(
                    {
                        "id": "bps_123",
                        "object": "billing_portal.session",
                        "url": "https://billing.stripe.com/p/session/test_123",
                        "customer": form.get("customer", [""])[0],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    server = FakeStripe()
    yield server
    server.close()


@pytest_asyncio.fixture
async def billing_api(db_url: str, fake_stripe: FakeStripe) -> AsyncIterator[Api]:
    settings = make_settings(
        db_url,
        stripe_secret_key="sk_test_fake",
        stripe_billing_webhook_secret=SECRET,
        stripe_starter_price_id="price_starter",
        stripe_pro_price_id="price_pro",
        stripe_billing_portal_config_id="bpc_1",
        stripe_api_base=fake_stripe.url,
        cors_allowed_origins="https://app.example.com,https://dash.example.com:8443",
    )
    async for api in _api(settings, db_url):
        yield api


def sign(
    body: bytes, secret: str = SECRET, ts: int | None = None, extra_v1: list[str] | None = None
) -> str:
    """A real `Stripe-Signature` header: HMAC-SHA256 over "<t>.<body>"."""
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    parts = [f"t={ts}", *(f"v1={v}" for v in (extra_v1 or [])), f"v1={mac}"]
    return ",".join(parts)


def event(
    kind: str, obj: dict[str, Any], event_id: str = "evt_1", created: int | None = None
) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
        }
    ).encode()


async def deliver(api: Api, body: bytes, header: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    sig = sign(body) if header is None else header
    if sig:
        headers["Stripe-Signature"] = sig
    return await api.client.post(WEBHOOK, content=body, headers=headers)


async def new_org(api: Api) -> dict[str, Any]:
    """A free org whose request rate limit is lifted (only billing is under test)."""
    created = await api.create_org()
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE organizations SET custom_limits = $2 WHERE id = $1",
            created["organization"]["id"],
            {"rate_limit_requests_per_second": 10_000, "rate_limit_burst": 10_000},
        )
    return created


async def org_row(api: Api, oid: str) -> Any:
    async with api.state.pool.acquire() as c:
        return await c.fetchrow("SELECT * FROM organizations WHERE id = $1", oid)


async def test_status_always_works(api: Api, tenant: dict[str, Any]) -> None:
    resp = await api.client.get("/api/v1/billing/status", headers=tenant["headers"])
    assert resp.status_code == 200
    assert resp.json() == {
        "plan_tier": "enterprise",
        "stripe_subscription_id": None,
        "stripe_subscription_status": None,
        "stripe_current_period_end": None,
        "stripe_cancel_at_period_end": None,
        "has_stripe_customer": False,
    }
    scoped = await api.client.post(
        "/api/v1/api-keys", json={"name": "s", "queues": ["a"]}, headers=tenant["headers"]
    )
    sh = api.as_key(scoped.json()["key"])
    assert (await api.client.get("/api/v1/billing/status", headers=sh)).status_code == 200
    assert (await api.client.get("/api/v1/billing/status")).status_code == 401


async def test_portal_without_stripe(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    url = "/api/v1/billing/portal"
    unconfigured = await api.client.post(
        url, json={"return_url": "https://spooled.cloud/settings"}, headers=h
    )
    # CONTRACT §21 R9: not available here → 503, never 500; whatever the return_url
    assert unconfigured.status_code == 503
    assert unconfigured.json()["code"] == "SERVICE_UNAVAILABLE"
    assert unconfigured.json()["message"] == (
        "Billing (STRIPE_SECRET_KEY) is not configured on this server"
    )
    bad = await api.client.post(url, json={"return_url": "https://evil.example.com/x"}, headers=h)
    assert bad.status_code == 503 and bad.json()["code"] == "SERVICE_UNAVAILABLE"
    assert (await api.client.post(url, json={}, headers=h)).status_code == 422
    missing = await deliver(api, event("invoice.paid", {}))
    assert missing.status_code == 503 and missing.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "STRIPE_BILLING_WEBHOOK_SECRET" in missing.json()["message"]
    unsigned = await api.client.post("/api/v1/billing/webhook", content=b"")
    assert unsigned.status_code == 503 and unsigned.json()["code"] == "SERVICE_UNAVAILABLE"


async def test_portal_with_stripe(billing_api: Api, fake_stripe: FakeStripe) -> None:
    api = billing_api
    created = await new_org(api)
    oid = created["organization"]["id"]
    h = api.as_key(created["api_key"]["key"])
    url = "/api/v1/billing/portal"
    no_customer = await api.client.post(
        url, json={"return_url": "https://app.example.com/billing"}, headers=h
    )
    assert no_customer.status_code == 400
    assert no_customer.json()["message"] == "No billing account found"
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET stripe_customer_id = 'cus_42' WHERE id = $1", oid)
    for bad in (
        "http://app.example.com/billing",
        "https://app.example.com.evil.io/",
        "https://dash.example.com/x",
        "javascript:alert(1)",
        "/relative",
        "",
        "https://user@app.example.com/",
        "https://app.example.com:99999/",
    ):
        resp = await api.client.post(url, json={"return_url": bad}, headers=h)
        assert resp.status_code == 400, (bad, resp.text)
    assert fake_stripe.requests == []
    for good in (
        "https://APP.example.com/billing?x=1",
        "https://dash.example.com:8443/b",
        "http://localhost:3000/back",
    ):
        resp = await api.client.post(url, json={"return_url": good}, headers=h)
        assert resp.status_code == 200, (good, resp.text)
        assert resp.json() == {"url": "https://billing.stripe.com/p/session/test_123"}
    sent = fake_stripe.requests[0]
    assert sent["path"] == "/v1/billing_portal/sessions"
    assert sent["auth"] == "Bearer sk_test_fake"
    assert sent["form"] == {
        "customer": ["cus_42"],
        "return_url": ["https://APP.example.com/billing?x=1"],
        "configuration": ["bpc_1"],
    }
    scoped = await api.client.post(
        "/api/v1/api-keys", json={"name": "s", "queues": ["a"]}, headers=h
    )
    denied = await api.client.post(
        url,
        json={"return_url": "https://app.example.com/"},
        headers=api.as_key(scoped.json()["key"]),
    )
    assert denied.status_code == 403


async def test_portal_localhost_refused_in_production(db_url: str) -> None:
    from spooled_backend.billing.service import check_return_url
    from spooled_backend.core.errors import ValidationFailed

    prod = make_settings(
        db_url, rust_env="production", jwt_secret="Zq8#Lm2!Vx7$Np4@Rt6&Kw9*Bd3^Hf5%"
    )
    with pytest.raises(ValidationFailed):
        check_return_url(prod, "http://localhost:3000/")
    check_return_url(prod, "https://spooled.cloud/settings")


async def test_signature_rules(billing_api: Api) -> None:
    api = billing_api
    body = event("some.unhandled.type", {"id": "x"}, "evt_sig")
    now = int(time.time())
    rejected = [
        "",  # missing
        "garbage",
        f"t={now}",
        f"t=abc,v1={'0' * 64}",
        sign(body, secret="whsec_other"),
        sign(body, ts=now - 301),
        sign(body, ts=now + 75),  # margin: the server reads the clock a little later
        sign(body + b" "),
    ]
    for header in rejected:
        resp = await deliver(api, body, header)
        assert resp.status_code == 401, (header, resp.text)
        assert resp.json()["code"] == "AUTHENTICATION_FAILED"
    tampered = await deliver(api, body.replace(b"evt_sig", b"evt_sag"), sign(body))
    assert tampered.status_code == 401
    bad_utf8 = b'{"id":"\xff"}'
    assert (await deliver(api, bad_utf8, sign(bad_utf8))).status_code == 401
    # several v1 values (secret rotation): any match is accepted; a little clock skew too
    ok = await deliver(api, body, sign(body, ts=now + 50, extra_v1=["deadbeef" * 8]))
    assert ok.status_code == 200 and ok.json() == {"received": True}
    old_ok = await deliver(
        api, event("x.y", {}, "evt_old"), sign(event("x.y", {}, "evt_old"), ts=now - 270)
    )
    assert old_ok.status_code == 200
    for junk in (
        b"not json",
        b"[]",
        json.dumps({"id": "e", "type": "t"}).encode(),
        json.dumps({"id": "e\u0000", "type": "t", "created": 1, "data": {"object": {}}}).encode(),
        json.dumps({"id": "e", "type": "t", "created": 10**15, "data": {"object": {}}}).encode(),
    ):
        resp = await deliver(api, junk, sign(junk))
        assert resp.status_code == 400, (junk, resp.text)


async def test_subscription_lifecycle(billing_api: Api) -> None:
    api = billing_api
    created = await new_org(api)
    oid = created["organization"]["id"]
    h = api.as_key(created["api_key"]["key"])
    unpaid = event(
        "checkout.session.completed",
        {"client_reference_id": oid, "customer": "cus_9", "payment_status": "unpaid"},
        "evt_c0",
    )
    assert (await deliver(api, unpaid)).status_code == 200
    assert (await org_row(api, oid))["stripe_customer_id"] is None
    paid = event(
        "checkout.session.completed",
        {
            "client_reference_id": oid,
            "customer": "cus_9",
            "subscription": "sub_1",
            "payment_status": "paid",
        },
        "evt_c1",
    )
    assert (await deliver(api, paid)).status_code == 200
    row = await org_row(api, oid)
    assert row["stripe_customer_id"] == "cus_9" and row["stripe_subscription_id"] == "sub_1"

    t0 = int(time.time()) - 100
    period_end = t0 + 30 * 86400
    sub = {
        "id": "sub_1",
        "customer": "cus_9",
        "status": "active",
        "cancel_at_period_end": False,
        "items": {"data": [{"price": {"id": "price_pro"}, "current_period_end": period_end}]},
    }
    assert (
        await deliver(api, event("customer.subscription.created", sub, "evt_s1", t0))
    ).status_code == 200
    status = (await api.client.get("/api/v1/billing/status", headers=h)).json()
    assert status["plan_tier"] == "pro" and status["stripe_subscription_status"] == "active"
    assert status["has_stripe_customer"] is True and status["stripe_cancel_at_period_end"] is False
    assert status["stripe_subscription_id"] == "sub_1"
    assert status["stripe_current_period_end"].startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(period_end))
    )
    # the plan is effective at once for quotas
    usage = (await api.client.get("/api/v1/organizations/usage", headers=h)).json()
    assert usage["plan"] == "pro"

    # an older event arriving late changes nothing
    older = dict(sub, status="past_due", items={"data": [{"price": "price_starter"}]})
    assert (
        await deliver(api, event("customer.subscription.updated", older, "evt_s0", t0 - 50))
    ).status_code == 200
    assert (await org_row(api, oid))["plan_tier"] == "pro"

    downgrade = dict(sub, items={"data": [{"price": "price_starter"}]}, cancel_at_period_end=True)
    await deliver(api, event("customer.subscription.updated", downgrade, "evt_s2", t0 + 10))
    row = await org_row(api, oid)
    assert row["plan_tier"] == "starter" and row["stripe_cancel_at_period_end"] is True

    await deliver(
        api,
        event(
            "invoice.payment_failed",
            {"customer": "cus_9", "subscription": "sub_1"},
            "evt_i1",
            t0 + 20,
        ),
    )
    assert (await org_row(api, oid))["stripe_subscription_status"] == "past_due"
    await deliver(
        api,
        event("invoice.paid", {"customer": "cus_9", "subscription": "sub_1"}, "evt_i2", t0 + 30),
    )
    assert (await org_row(api, oid))["stripe_subscription_status"] == "active"

    incomplete = dict(sub, status="incomplete")
    await deliver(api, event("customer.subscription.updated", incomplete, "evt_s3", t0 + 40))
    assert (await org_row(api, oid))["plan_tier"] == "starter"  # not paid: plan kept
    await deliver(api, event("customer.subscription.deleted", sub, "evt_s4", t0 + 50))
    row = await org_row(api, oid)
    assert row["plan_tier"] == "free" and row["stripe_subscription_status"] == "canceled"
    # unknown customers and unknown event types are acknowledged and ignored
    stray = event("customer.subscription.updated", dict(sub, customer="cus_unknown"), "evt_s5")
    assert (await deliver(api, stray)).status_code == 200
    assert (
        await deliver(api, event("charge.refunded", {"id": "ch_1"}, "evt_x"))
    ).status_code == 200


async def test_exactly_once_per_event(billing_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = billing_api
    created = await new_org(api)
    oid = created["organization"]["id"]
    body = event(
        "checkout.session.completed",
        {"client_reference_id": oid, "customer": "cus_1", "payment_status": "paid"},
        "evt_once",
    )
    first = await deliver(api, body)
    assert first.status_code == 200 and first.json() == {"received": True}
    again = await deliver(api, body)
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval(
                "SELECT status FROM processed_stripe_events WHERE event_id = 'evt_once'"
            )
            == "done"
        )
        # a fresh claim held by another delivery → 409; a stale one (> 300 s) is taken over
        await c.execute(
            "INSERT INTO processed_stripe_events (event_id, status, claimed_at) "
            "VALUES ('evt_busy', 'processing', now()), "
            "('evt_stale', 'processing', now() - interval '301 seconds')"
        )
    busy = event(
        "checkout.session.completed",
        {"client_reference_id": oid, "customer": "cus_2", "payment_status": "paid"},
        "evt_busy",
    )
    resp = await deliver(api, busy)
    assert resp.status_code == 409 and resp.json()["code"] == "CONFLICT"
    assert (await org_row(api, oid))["stripe_customer_id"] == "cus_1"
    stale = event(
        "checkout.session.completed",
        {"client_reference_id": oid, "customer": "cus_3", "payment_status": "paid"},
        "evt_stale",
    )
    assert (await deliver(api, stale)).status_code == 200
    assert (await org_row(api, oid))["stripe_customer_id"] == "cus_3"

    # a failing handler releases its claim; Stripe's retry then succeeds
    async def boom(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("handler crashed")

    retry_body = event(
        "checkout.session.completed",
        {"client_reference_id": oid, "customer": "cus_4", "payment_status": "paid"},
        "evt_retry",
    )
    monkeypatch.setattr(webhook, "apply_event", boom)
    saved = structlog.get_config()
    structlog.configure(processors=build_processors(json_logs=True))  # no slow pretty traceback
    try:
        failed = await deliver(api, retry_body)
    finally:
        structlog.configure(**saved)
    assert failed.status_code == 500 and failed.json()["code"] == "INTERNAL_ERROR"
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval(
                "SELECT count(*) FROM processed_stripe_events WHERE event_id = 'evt_retry'"
            )
            == 0
        )
    monkeypatch.undo()
    assert (await deliver(api, retry_body)).status_code == 200
    assert (await org_row(api, oid))["stripe_customer_id"] == "cus_4"


async def test_concurrent_duplicate_deliveries_apply_once(billing_api: Api) -> None:
    import asyncio

    api = billing_api
    created = await new_org(api)
    oid = created["organization"]["id"]
    body = event(
        "checkout.session.completed",
        {"client_reference_id": oid, "customer": "cus_c", "payment_status": "paid"},
        "evt_par",
    )
    header = sign(body)
    results = await asyncio.gather(*(deliver(api, body, header) for _ in range(8)))
    codes = sorted(r.status_code for r in results)
    assert set(codes) <= {200, 409} and codes.count(200) >= 1
    fresh = [r for r in results if r.status_code == 200 and "duplicate" not in r.json()]
    assert len(fresh) == 1


def test_settings_type() -> None:
    assert Settings.model_fields["stripe_api_base"].default is None
