"""Email login and signup (CONTRACT §7.2) with real SMTP delivery to a local aiosmtpd server."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from spooled_backend.auth import tokens
from spooled_backend.config import Settings
from tests.conftest import Api, make_settings
from tests.integration.auth_support import bearer, fresh_ip, instance
from tests.support import free_port

START = "/api/v1/auth/email/start"
VERIFY = "/api/v1/auth/email/verify"
SIGNUP = "/api/v1/auth/signup/complete"


@dataclass
class Inbox:
    """What the SMTP server received."""

    messages: list[email.message.Message] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"

    def code_for(self, address: str) -> str:
        for message in reversed(self.messages):
            if message["To"] == address:
                found = re.search(r"\b(\d{6})\b", message.get_payload(decode=True).decode())
                assert found, message.get_payload()
                return found.group(1)
        raise AssertionError(f"no mail for {address}")


@dataclass
class Smtp:
    inbox: Inbox
    port: int


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"smtp-pass-123"
        if ok:
            inbox.logins.append((data.login, data.password))
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield Smtp(inbox, port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(db_url: str, smtp: Smtp) -> Settings:
    return make_settings(db_url, email_provider="smtp", smtp_host="127.0.0.1", smtp_port=smtp.port,
                         smtp_username="mailer", smtp_password="smtp-pass-123",
                         email_from_address="login@spooled.test")


async def start(api: Api, address: str) -> Any:
    return await api.client.post(START, json={"email": address}, headers=fresh_ip())


async def verify(api: Api, address: str, code: str) -> Any:
    return await api.client.post(VERIFY, json={"email": address, "code": code}, headers=fresh_ip())


async def stored_codes(api: Api, address: str) -> list[dict[str, Any]]:
    async with api.state.pool.acquire() as c:
        rows = await c.fetch("SELECT * FROM email_login_codes WHERE email = $1 ORDER BY created_at", address)
    return [dict(r) for r in rows]


async def test_signup_flow_over_smtp(smtp_settings: Settings, db_url: str, smtp: Smtp) -> None:
    async with instance(smtp_settings, db_url) as api:
        resp = await start(api, "  New.User@Example.COM ")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"message": "Login code sent to your email", "email_sent_to": "n***@example.com",
                               "email_to": "n***@example.com", "expires_in": 600}
        message = smtp.inbox.messages[-1]
        assert message["To"] == "new.user@example.com"
        assert "login@spooled.test" in message["From"] and message["Subject"] == "Your Spooled login code"
        assert smtp.inbox.logins == [(b"mailer", b"smtp-pass-123")]
        code = smtp.inbox.code_for("new.user@example.com")
        # hashed at rest
        rows = await stored_codes(api, "new.user@example.com")
        assert len(rows) == 1 and code not in rows[0]["code"] and rows[0]["code"].startswith("h:")
        assert rows[0]["organization_id"] is None

        verified = await verify(api, "new.user@example.com", code)
        assert verified.status_code == 200, verified.text
        body = verified.json()
        assert body["type"] == "signup" and body["email"] == "new.user@example.com"
        assert body["expires_in"] == 1800 and len(body["signup_token"]) >= 40
        # single use
        again = await verify(api, "new.user@example.com", code)
        assert again.status_code == 401 and again.json()["message"] == "Invalid or expired code"

        bad_slug = await api.client.post(SIGNUP, json={"signup_token": body["signup_token"],
                                                       "name": "New Co", "slug": "Bad Slug"})
        assert bad_slug.status_code == 400
        taken = await api.create_org(slug="taken-slug")
        assert taken
        conflict = await api.client.post(SIGNUP, json={"signup_token": body["signup_token"],
                                                       "name": "New Co", "slug": "taken-slug"})
        assert conflict.status_code == 409
        done = await api.client.post(SIGNUP, json={"signup_token": body["signup_token"],
                                                   "name": "New Co", "slug": "new-co"})
        assert done.status_code == 201, done.text
        created = done.json()
        assert created["organization"]["slug"] == "new-co"
        assert created["organization"]["billing_email"] == "new.user@example.com"
        assert created["api_key"].startswith("sk_test_")
        assert created["token_type"] == "Bearer" and created["expires_in"] == 86400
        jobs = await api.client.get("/api/v1/jobs", headers=bearer(created["api_key"]))
        assert jobs.status_code == 200
        me = await api.client.get("/api/v1/auth/me", headers=bearer(created["access_token"]))
        assert me.json()["organization_id"] == created["organization"]["id"]
        claims = tokens.decode(created["access_token"], api.state.settings.effective_jwt_secret)
        assert claims.email == "new.user@example.com"
        # the token is spent
        reuse = await api.client.post(SIGNUP, json={"signup_token": body["signup_token"],
                                                    "name": "Other", "slug": "other-co"})
        assert reuse.status_code == 401 and reuse.json()["code"] == "AUTHENTICATION_FAILED"
        check = await api.client.get("/api/v1/auth/check-email", params={"email": "NEW.user@example.com"})
        assert check.json() == {"available": False, "exists": True, "signup_enabled": True,
                                "has_organizations": True}


async def test_login_flow_for_an_existing_organization(
    smtp_settings: Settings, db_url: str, smtp: Smtp
) -> None:
    async with instance(smtp_settings, db_url) as api:
        org = await api.create_org(billing_email="owner@corp.example")
        assert (await start(api, "owner@corp.example")).status_code == 200
        rows = await stored_codes(api, "owner@corp.example")
        assert rows[0]["organization_id"] == org["organization"]["id"]
        resp = await verify(api, "owner@corp.example", smtp.inbox.code_for("owner@corp.example"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["type"] == "login" and body["token_type"] == "Bearer"
        assert body["expires_in"] == 86400 and body["refresh_expires_in"] == 2073600
        claims = tokens.decode(body["access_token"], api.state.settings.effective_jwt_secret)
        assert claims.org_id == org["organization"]["id"]
        assert claims.api_key_id == org["api_key"]["id"] and claims.email == "owner@corp.example"
        assert (await api.client.get("/api/v1/jobs", headers=bearer(body["access_token"]))).status_code == 200


async def test_guess_and_code_limits(smtp_settings: Settings, db_url: str, smtp: Smtp) -> None:
    async with instance(smtp_settings, db_url) as api:
        address = "guess@example.com"
        assert (await start(api, address)).status_code == 200
        code = smtp.inbox.code_for(address)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            resp = await verify(api, address, wrong)
            assert resp.status_code == 401 and resp.json()["message"] == "Invalid or expired code"
        # 5 failed guesses per address per 10 minutes: even the right code is refused now
        resp = await verify(api, address, code)
        assert resp.status_code == 401 and resp.json()["message"] == "Too many attempts"
        async with api.state.pool.acquire() as c:
            assert await c.fetchval("SELECT attempts FROM email_login_codes WHERE email = $1", address) == 5
            await c.execute("UPDATE email_login_guesses SET created_at = now() - interval '11 minutes'")
        # the guess window passed, but this code already spent its 5 attempts
        resp = await verify(api, address, code)
        assert resp.status_code == 401 and resp.json()["message"] == "Too many attempts"
        # a fresh code works; an expired one does not
        assert (await start(api, address)).status_code == 200
        fresh = smtp.inbox.code_for(address)
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE email_login_codes SET expires_at = now() - interval '1 s' "
                            "WHERE email = $1", address)
        expired = await verify(api, address, fresh)
        assert expired.status_code == 401 and expired.json()["message"] == "Invalid or expired code"
        assert (await start(api, address)).status_code == 200
        ok = await verify(api, address, smtp.inbox.code_for(address))
        assert ok.status_code == 200 and ok.json()["type"] == "signup"


async def test_five_codes_per_hour(smtp_settings: Settings, db_url: str, smtp: Smtp) -> None:
    async with instance(smtp_settings, db_url) as api:
        for _ in range(5):
            assert (await start(api, "many@example.com")).status_code == 200
        sixth = await start(api, "many@example.com")
        assert sixth.status_code == 429 and sixth.json()["code"] == "RATE_LIMIT_EXCEEDED"
        assert 3500 <= int(sixth.headers["retry-after"]) <= 3600
        assert len(smtp.inbox.messages) == 5 and len(await stored_codes(api, "many@example.com")) == 5
        assert (await start(api, "other@example.com")).status_code == 200


async def test_smtp_down_is_503_and_stores_nothing(smtp_settings: Settings, db_url: str) -> None:
    down = smtp_settings.model_copy(update={"smtp_port": free_port()})
    async with instance(down, db_url) as api:
        resp = await start(api, "nobody@example.com")
        assert resp.status_code == 503 and resp.json()["code"] == "SERVICE_UNAVAILABLE"
        assert await stored_codes(api, "nobody@example.com") == []


async def test_console_provider_logs_in_development_refuses_in_production(
    settings: Settings, db_url: str
) -> None:
    async with instance(settings, db_url) as api:
        with structlog.testing.capture_logs() as logs:
            resp = await start(api, "dev@example.com")
        assert resp.status_code == 200
        mail = [e for e in logs if e.get("to") == "dev@example.com"]
        assert mail and re.search(r"\b\d{6}\b", mail[0]["body"])
    prod = make_settings(db_url, rust_env="production")
    async with instance(prod, db_url) as api:
        resp = await start(api, "prod@example.com")
        assert resp.status_code == 503
        assert resp.json()["code"] == "CONFIGURATION_ERROR" and "SMTP" in resp.json()["message"]
        assert await stored_codes(api, "prod@example.com") == []


async def test_bad_input(api: Api) -> None:
    for body in ({"email": "not-an-email"}, {"email": ""}, {"email": "a@" + "b" * 300 + ".com"}):
        resp = await api.client.post(START, json=body, headers=fresh_ip())
        assert resp.status_code == 400, body
    assert (await api.client.post(START, json={}, headers=fresh_ip())).status_code == 422
    for code in ("12345", "1234567", "abcdef", ""):
        resp = await api.client.post(VERIFY, json={"email": "a@example.com", "code": code}, headers=fresh_ip())
        assert resp.status_code == 400, code
    resp = await api.client.get("/api/v1/auth/check-email", params={"email": "nope"}, headers=fresh_ip())
    assert resp.status_code == 400
    resp = await api.client.get("/api/v1/auth/check-email", headers=fresh_ip())
    assert resp.status_code == 400
    resp = await api.client.get("/api/v1/auth/check-email", params={"email": "free@example.com"},
                                headers=fresh_ip())
    assert resp.json() == {"available": True, "exists": False, "signup_enabled": True,
                           "has_organizations": False}
    resp = await api.client.post(SIGNUP, json={"signup_token": "x" * 43, "name": "Acme", "slug": "acme"})
    assert resp.status_code == 401


async def test_signup_modes(db_url: str) -> None:
    body = {"signup_token": "y" * 43, "name": "Acme", "slug": "acme"}
    async with instance(make_settings(db_url, email_signup_enabled=False), db_url) as api:
        resp = await api.client.post(SIGNUP, json=body,
                                     headers={"X-Admin-Key": "admin-test-key-0123456789"})
        assert resp.status_code == 403
        check = await api.client.get("/api/v1/auth/check-email", params={"email": "a@example.com"})
        assert check.json()["signup_enabled"] is False
    async with instance(make_settings(db_url, registration_mode="closed"), db_url) as api:
        assert (await api.client.post(SIGNUP, json=body)).status_code == 403
        with_admin = await api.client.post(SIGNUP, json=body,
                                           headers={"X-Admin-Key": "admin-test-key-0123456789"})
        assert with_admin.status_code == 401  # past the gate; the token itself is unknown
    async with instance(make_settings(db_url, registration_mode="invite"), db_url) as api:
        resp = await api.client.post(SIGNUP, json=body,
                                     headers={"X-Admin-Key": "admin-test-key-0123456789"})
        assert resp.status_code == 403
