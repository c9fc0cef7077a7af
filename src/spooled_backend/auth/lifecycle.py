"""Start-up of the authentication and hardening services (called from the app lifespan)."""

from __future__ import annotations

from spooled_backend.auth.revocation import RevocationStore
from spooled_backend.auth.service import AUTH_CHANNEL
from spooled_backend.core import tenancy
from spooled_backend.core.state import AppState
from spooled_backend.observability.redaction import register_secrets
from spooled_backend.ratelimit.limiter import RateLimiter


async def start_security(state: AppState) -> None:
    """JWT revocation store, rate limiter (Redis or in-process), RLS tenant role probe, and the
    configured secrets registered for log redaction."""
    settings = state.settings
    register_secrets([
        settings.admin_api_key, settings.jwt_secret, settings.smtp_password,
        settings.stripe_secret_key, settings.stripe_billing_webhook_secret,
        settings.metrics_token, settings.email_api_key,
    ])
    state.revocations = RevocationStore(state.redis, redis_configured=bool(settings.redis_url))
    state.rate_limiter = RateLimiter(state.redis, fail_closed=settings.rate_limit_fail_closed)
    state.tenant_role = await tenancy.probe_tenant_role(state.pool)
    if state.listener is not None:
        # Key revocations and plan changes pushed by the 0008 trigger; after a reconnect the
        # notifications sent meanwhile are lost, so start from an empty cache.
        await state.listener.subscribe(AUTH_CHANNEL, state.key_cache.rows.on_notify)
        state.listener.on_reconnect(state.key_cache.rows.clear)
