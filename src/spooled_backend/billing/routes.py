"""Billing REST routes (CONTRACT §6 #10–12, §7.4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from spooled_backend.billing import service, webhook
from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.responses import JSONBody, json_response

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])


class PortalRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    return_url: Annotated[str, Field(max_length=2048)]


@router.get("/status")
async def billing_status(conn: Conn, auth: Auth) -> JSONBody:
    """`{plan_tier, has_stripe_customer, stripe_*?}`; works with or without Stripe configured."""
    return json_response(await service.billing_status(conn, auth))


@router.post("/portal")
async def billing_portal(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """`{return_url}` → `{url}` of a Stripe customer-portal session. 403 scoped keys, 400 bad
    return_url / no billing account, 500 CONFIGURATION_ERROR when Stripe is not configured."""
    auth.require_unrestricted()
    body = await parse_body(request, PortalRequest)
    return json_response(
        await service.create_portal_session(conn, state.settings, auth, body.return_url)
    )


@router.post("/webhook")
async def billing_webhook(request: Request, state: State) -> JSONBody:
    """Stripe's billing events, authenticated by `Stripe-Signature` (no API key). 200 on
    success and on duplicates of finished events; 401 signature; 409 in flight."""
    raw = await request.body()
    result = await webhook.handle_webhook(
        state.pool, state.settings, raw, request.headers.get("stripe-signature")
    )
    return json_response(result)
