"""No secret reaches the logs (observability/redaction.py): API keys, JWTs (also in `?token=`
query strings), the admin key, webhook secrets, configured secrets — in access logs, error
logs and rendered tracebacks."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from fastapi import FastAPI

from spooled_backend.core.deps import Auth
from spooled_backend.observability.logging import build_processors
from spooled_backend.observability.redaction import REDACTED, RedactingFilter, redact_text
from tests.conftest import make_settings
from tests.integration.auth_support import bearer, enterprise_org, instance

ADMIN_KEY = "admin-test-key-0123456789"
WEBHOOK_SECRET = "my-webhook-signing-secret-value"


def _uncache_loggers() -> None:
    """Module loggers cached by an earlier `cache_logger_on_first_use=True` configuration would
    ignore ours: drop their cached `bind` so they pick the test configuration up."""
    for module in list(sys.modules.values()):
        if module is None or not getattr(module, "__name__", "").startswith("spooled_backend"):
            continue
        proxy = getattr(module, "log", None)
        if isinstance(proxy, structlog._config.BoundLoggerLazyProxy):
            proxy.__dict__.pop("bind", None)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The production processor chain (JSON lines) writing into a buffer."""
    buffer = io.StringIO()
    _uncache_loggers()
    structlog.configure(
        processors=build_processors(json_logs=True),
        logger_factory=structlog.PrintLoggerFactory(buffer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        _uncache_loggers()


def noisy_routes(app: FastAPI) -> None:
    log = structlog.get_logger("test.noisy")

    @app.post("/api/v1/_test/noisy")
    async def noisy(auth: Auth, body: dict[str, Any]) -> dict[str, Any]:
        log.info("handling", authorization=body["header"], webhook_secret=WEBHOOK_SECRET,
                 headers={"X-Admin-Key": ADMIN_KEY, "x-api-key": body["key"]},
                 note=f"caller sent {body['header']} and key {body['key']}")
        raise RuntimeError(f"boom while using {body['key']} / {body['token']} / {ADMIN_KEY}")


async def test_no_secret_in_logs(db_url: str, log_output: io.StringIO) -> None:
    settings = make_settings(db_url, admin_api_key=ADMIN_KEY)
    async with instance(settings, db_url, noisy_routes) as api:
        org = await enterprise_org(api)
        key = org["key"]
        login = await api.client.post("/api/v1/auth/login", json={"api_key": key})
        tokens = login.json()
        access, refresh = tokens["access_token"], tokens["refresh_token"]
        # a bad key, an admin call, realtime-style query credentials, an error path
        assert (await api.client.get("/api/v1/jobs", headers=bearer(key[:-3] + "abc"))).status_code == 401
        admin = await api.client.get("/api/v1/admin/plans", headers={"X-Admin-Key": ADMIN_KEY})
        assert admin.status_code == 200
        bad_admin = await api.client.get("/api/v1/admin/plans", headers={"X-Admin-Key": ADMIN_KEY + "x"})
        assert bad_admin.status_code == 401
        # (an invalid queue filter ends the stream before it starts: 400)
        assert (await api.client.get(f"/api/v1/events?token={access}&queue=q!")).status_code == 400
        await api.client.get(f"/api/v1/ws?api_key={key}")
        await api.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        crashed = await api.client.post(
            "/api/v1/_test/noisy", headers=bearer(access),
            json={"header": f"Bearer {access}", "key": key, "token": refresh},
        )
        assert crashed.status_code == 500
        await api.client.post("/api/v1/auth/logout", headers=bearer(access), json={"refresh_token": refresh})
    output = log_output.getvalue()
    # the logs were captured (the scenario really logged) ...
    assert '"event": "request"' in output and "/api/v1/admin/plans" in output
    assert "boom while using" in output and "Traceback" in output
    assert '"event": "handling"' in output and REDACTED in output
    assert "token=[REDACTED]&queue=q" in output and "api_key=[REDACTED]" in output
    # ... and no secret is in them
    jwt_secret = api.state.settings.effective_jwt_secret
    for secret in (key, key[8:], access, refresh, access.split(".")[1], ADMIN_KEY, WEBHOOK_SECRET,
                   jwt_secret):
        assert secret not in output, secret[:12]


def test_stdlib_records_are_redacted() -> None:
    """uvicorn's access-log record format, and exception text on stdlib loggers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction.stdlib")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcmcifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
    key = "sp_live_" + "A1b2C3d4" * 5 + "xyz"
    try:
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    f"/api/v1/ws?token={token}", "1.1", 101)
        try:
            raise ValueError(f"bad key {key}")
        except ValueError:
            logger.exception("failed with Authorization: Bearer %s", key)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "/api/v1/ws?token=[REDACTED]" in text and "ValueError: bad key sp_live_[REDACTED]" in text
    assert token not in text and key not in text and key[8:] not in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
        ("key sk_test_ABCDEFGHIJKLMNOP here", "key sk_test_[REDACTED] here"),
        ("/events?queue=a&api_key=sp_test_x123456&x=1", "/events?queue=a&api_key=[REDACTED]&x=1"),
        ("whk_abcdefghijkl token", "whk_[REDACTED] token"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_text(raw: str, expected: str) -> None:
    assert redact_text(raw) == expected
