"""Billing REST routes (CONTRACT §6 #10–12, §7.4)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spooled_backend.billing import service, webhook
from spooled_backend.billing.schemas import (
    BillingStatus,
    PortalRequest,
    PortalSession,
    WebhookReceived,
)
from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.openapi import KEY, STRIPE, UNRESTRICTED, doc
from spooled_backend.core.responses import JSONBody, json_response

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])


@router.get("/status", **doc(BillingStatus, errors=(404,), auth=KEY))
async def billing_status(conn: Conn, auth: Auth) -> JSONBody:
    """`{plan_tier, has_stripe_customer, stripe_*?}`; works with or without Stripe configured."""
    return json_response(await service.billing_status(conn, auth))


@router.post(
    "/portal", **doc(PortalSession, body=PortalRequest, errors=(404, 503), auth=UNRESTRICTED)
)
async def billing_portal(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """`{return_url}` → `{url}` of a Stripe customer-portal session. 403 scoped keys, 400 bad
    return_url / no billing account, 503 SERVICE_UNAVAILABLE when Stripe is not configured."""
    auth.require_unrestricted()
    body = await parse_body(request, PortalRequest)
    return json_response(
        await service.create_portal_session(conn, state.settings, auth, body.return_url)
    )


@router.post(
    "/webhook",
    **doc(WebhookReceived, errors=(400, 401, 409, 503), auth=STRIPE, raw_body="application/json"),
)
async def billing_webhook(request: Request, state: State) -> JSONBody:
    """Stripe's billing events, authenticated by `Stripe-Signature` (no API key). 200 on
    success and on duplicates of finished events; 401 signature; 409 in flight."""
    raw = await request.body()
    result = await webhook.handle_webhook(
        state.pool, state.settings, raw, request.headers.get("stripe-signature")
    )
    return json_response(result)
