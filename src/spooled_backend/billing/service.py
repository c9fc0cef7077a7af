"""Billing status and the Stripe customer portal (CONTRACT §7.4), via the official `stripe`
library. Stripe is optional: without STRIPE_SECRET_KEY the portal answers 503
SERVICE_UNAVAILABLE (CONTRACT §21 R9: not available here, never a 500), while the status route
always works."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg
import stripe

from spooled_backend.billing import queries as q
from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import BadRequest, NotFound, ServiceUnavailable, ValidationFailed

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


def not_configured(what: str) -> ServiceUnavailable:
    """503 SERVICE_UNAVAILABLE: billing is not set up on this server (CONTRACT §21 R9)."""
    return ServiceUnavailable(f"{what} is not configured on this server")


def stripe_client(settings: Settings) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    """A client for one call (cheap to build; async HTTP through httpx, 20 s timeout) and its
    HTTP client, which the caller closes."""
    if not settings.stripe_secret_key:
        raise not_configured("Billing (STRIPE_SECRET_KEY)")
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    http = stripe.HTTPXClient(timeout=20)
    client = stripe.StripeClient(
        settings.stripe_secret_key,
        http_client=http,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=1,
    )
    return client, http


async def billing_status(conn: asyncpg.Connection, auth: AuthContext) -> dict[str, Any]:
    """`{plan_tier, stripe_subscription_id, stripe_subscription_status,
    stripe_current_period_end, stripe_cancel_at_period_end, has_stripe_customer}`; 404."""
    row = await conn.fetchrow(q.BILLING_STATUS, auth.organization_id)
    if row is None:
        raise NotFound("Organization not found")
    out = {k: v for k, v in dict(row).items() if k != "stripe_customer_id"}
    out["has_stripe_customer"] = row["stripe_customer_id"] is not None
    return out


def origin_of(url: str) -> tuple[str, str] | None:
    """(scheme, lower-case origin `scheme://host[:port]`), or None when not an absolute URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    return parts.scheme, origin


def check_return_url(settings: Settings, url: str) -> None:
    """The portal's `return_url` must be https with an origin listed in CORS_ALLOWED_ORIGINS;
    outside production http://localhost (any port) is also accepted. 400 otherwise."""
    if not url or len(url) > 2048:
        raise ValidationFailed("return_url", "return_url must be 1-2048 characters", "length")
    parsed = origin_of(url)
    if parsed is None:
        raise ValidationFailed("return_url", "return_url must be an absolute http(s) URL", "url")
    scheme, origin = parsed
    allowed = {o.rstrip("/").lower() for o in settings.cors_origins}
    if scheme == "https" and origin in allowed:
        return
    host = urlsplit(url).hostname or ""
    if not settings.is_production and scheme == "http" and host.lower() in LOCAL_HOSTS:
        return
    raise ValidationFailed(
        "return_url", "return_url origin is not an allowed origin (CORS_ALLOWED_ORIGINS)", "origin"
    )


async def create_portal_session(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, return_url: str
) -> dict[str, str]:
    """Stripe billing-portal session for the caller's customer → `{url}`.

    503 SERVICE_UNAVAILABLE without STRIPE_SECRET_KEY (checked first, §21 R9); 400 bad
    `return_url` or "No billing account found" (no customer yet); 403 for scoped keys (checked
    by the route); a failing Stripe call is a 503 whose body does not repeat Stripe's message.
    """
    if not settings.stripe_secret_key:
        raise not_configured("Billing (STRIPE_SECRET_KEY)")
    check_return_url(settings, return_url)
    row = await conn.fetchrow(q.BILLING_STATUS, auth.organization_id)
    if row is None:
        raise NotFound("Organization not found")
    if not row["stripe_customer_id"]:
        raise BadRequest("No billing account found")
    params: dict[str, Any] = {"customer": row["stripe_customer_id"], "return_url": return_url}
    if settings.stripe_billing_portal_config_id:
        params["configuration"] = settings.stripe_billing_portal_config_id
    client, http = stripe_client(settings)
    try:
        session = await client.v1.billing_portal.sessions.create_async(params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        raise ServiceUnavailable("Billing provider request failed") from exc
    finally:
        await http.close_async()
    return {"url": str(session.url)}
