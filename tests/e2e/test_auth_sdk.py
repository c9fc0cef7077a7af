"""The SDK's `client.auth` flows against the real server (wire notes §1.9, §4.6), with and
without Redis: login, token clients, refresh-and-replay on 401, logout, me, validate, email."""

from __future__ import annotations

import jwt
import pytest
from spooled import SpooledClient
from spooled.errors import AuthenticationError, ServerError

from tests.e2e.conftest import Tenant
from tests.e2e.server import ServerProcess


def test_login_me_validate_and_rate_limit_info(tenant: Tenant) -> None:
    with tenant.client() as sdk:
        tokens = sdk.auth.login({"api_key": tenant.key})
        assert tokens.token_type == "Bearer"
        assert tokens.expires_in == 86400 and tokens.refresh_expires_in == 2073600
        claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
        assert isinstance(claims["exp"], int) and claims["org_id"] == tenant.org_id
        checked = sdk.auth.validate({"token": tokens.access_token})
        assert checked.valid is True
        assert sdk.auth.validate({"token": "nope"}).valid is False
        sdk.jobs.list()
        info = sdk.rate_limit
        assert info is not None and info.scope == "organization" and info.limit == 1000
        assert info.remaining is not None and 0 < info.remaining < 1000 and info.reset is not None
        # API-key clients cannot use /auth/me (JWT only)
        with pytest.raises(AuthenticationError):
            sdk.auth.me()
        # realtime token acquisition: POST /auth/login, cached
        assert sdk.get_jwt_token().startswith("eyJ")

    with SpooledClient(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                       base_url=tenant.base_url) as token_client:
        me = token_client.auth.me()
        assert me.organization_id == tenant.org_id
        assert me.organization is not None and me.organization.slug == tenant.slug
        assert me.queues == ["*"]
        created = token_client.jobs.create({"queue_name": "jwt-q", "payload": {"via": "jwt"}})
        assert token_client.jobs.get(created.id).payload == {"via": "jwt"}


def test_refresh_and_replay_after_a_401(tenant: Tenant) -> None:
    with tenant.client() as sdk:
        tokens = sdk.auth.login({"api_key": tenant.key})
    broken = tokens.access_token[:-6] + "AAAAAA"  # bad signature: 401, then refresh + replay
    with SpooledClient(access_token=broken, refresh_token=tokens.refresh_token,
                       base_url=tenant.base_url) as token_client:
        me = token_client.auth.me()
        assert me.organization_id == tenant.org_id
        assert token_client.jobs.list() is not None
        refreshed = token_client.auth.refresh({"refresh_token": tokens.refresh_token})
        assert refreshed.token_type == "Bearer" and refreshed.expires_in == 86400
    with SpooledClient(access_token=broken, refresh_token="eyJnot.a.refresh-token",
                       base_url=tenant.base_url) as hopeless, pytest.raises(AuthenticationError):
        hopeless.auth.me()


def test_logout(tenant: Tenant, server: ServerProcess) -> None:
    with tenant.client() as sdk:
        tokens = sdk.auth.login({"api_key": tenant.key})
    with SpooledClient(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                       base_url=tenant.base_url, auto_refresh_token=False) as token_client:
        if server.redis_url is None:
            with pytest.raises(ServerError) as excinfo:
                token_client.auth.logout()
            assert excinfo.value.status_code == 503
            assert token_client.auth.me().organization_id == tenant.org_id
            return
        token_client.auth.logout()  # sends the configured refresh token
        with pytest.raises(AuthenticationError):
            token_client.auth.me()
        with pytest.raises(AuthenticationError):
            token_client.auth.refresh({"refresh_token": tokens.refresh_token})
        assert token_client.auth.validate({"token": tokens.access_token}).valid is False


def test_email_helpers(tenant: Tenant) -> None:
    with tenant.client() as sdk:
        available = sdk.auth.check_email(f"{tenant.slug}@example.com")
        assert available.exists is False
        started = sdk.auth.start_email_login(f"{tenant.slug}@example.com")
        assert started.message == "Login code sent to your email"
