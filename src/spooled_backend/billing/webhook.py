"""The platform's own Stripe billing webhook (CONTRACT §7.4): verify, claim once, apply.

Exactly-once per event id with `processed_stripe_events`: the claim is committed on its own
(so a parallel delivery of the same event sees it and gets 409), the event is applied and
marked `done` in one transaction, and a failure releases the claim so Stripe's retry can
re-process it. A claim older than `STALE_CLAIM_SECS` (a crashed replica) can be taken over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from spooled_backend.billing import queries as q
from spooled_backend.billing.service import not_configured
from spooled_backend.billing.signature import BadSignature, verify
from spooled_backend.config import Settings
from spooled_backend.core.errors import AuthenticationFailed, BadRequest, Conflict
from spooled_backend.core.jsonvalue import loads_strict, string_problem

log = structlog.get_logger(__name__)

STALE_CLAIM_SECS = 300
MAX_UNIX = 253_402_300_800  # 10000-01-01: beyond this a timestamp cannot be stored
TERMINAL_STATUSES = frozenset({"canceled", "unpaid", "incomplete_expired"})
PAID_STATUSES = frozenset({"active", "trialing", "past_due"})


def parse_event(raw: bytes) -> dict[str, Any]:
    """The event JSON `{id, type, created, data: {object}}`; 400 when malformed."""
    event = loads_strict(raw)
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not 1 <= len(event["id"]) <= 255
        or string_problem(event["id"]) is not None
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise BadRequest("Webhook body is not a Stripe event")
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or not 0 < created < MAX_UNIX:
        raise BadRequest("Webhook event has no valid 'created' timestamp")
    return event


def plan_for(settings: Settings, status: str, price_ids: list[str]) -> str | None:
    """Plan implied by a subscription: free when terminal; starter/pro by configured price id
    when active/trialing/past_due; None (keep the current plan) otherwise."""
    if status in TERMINAL_STATUSES:
        return "free"
    if status not in PAID_STATUSES:
        return None
    if settings.stripe_pro_price_id and settings.stripe_pro_price_id in price_ids:
        return "pro"
    if settings.stripe_starter_price_id and settings.stripe_starter_price_id in price_ids:
        return "starter"
    return None


def _str(value: Any) -> str | None:
    """A Stripe id (or the id of an expanded object) that PostgreSQL can store; else None."""
    if isinstance(value, dict):
        value = value.get("id")  # expanded object
    if isinstance(value, str) and 0 < len(value) <= 255 and string_problem(value) is None:
        return value
    return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < MAX_UNIX:
        return datetime.fromtimestamp(value, UTC)
    return None


def _subscription_fields(obj: dict[str, Any]) -> tuple[list[str], datetime | None]:
    """(price ids, current period end) — the period end sits on the items in newer API versions."""
    prices: list[str] = []
    period_end = _timestamp(obj.get("current_period_end"))
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        price = _str(item.get("price"))
        if price:
            prices.append(price)
        period_end = period_end or _timestamp(item.get("current_period_end"))
    return prices, period_end


async def apply_event(conn: asyncpg.Connection, settings: Settings, event: dict[str, Any]) -> str:
    """Apply one verified event; returns what was done (for the log). Unknown types: ignored."""
    kind, obj = event["type"], event["data"]["object"]
    created = datetime.fromtimestamp(event["created"], UTC)
    if kind == "checkout.session.completed":
        org_id, customer = _str(obj.get("client_reference_id")), _str(obj.get("customer"))
        if obj.get("payment_status") != "paid" or not org_id or not customer:
            return "checkout ignored (unpaid or unlinked)"
        row = await conn.fetchval(q.LINK_CUSTOMER, org_id, customer, _str(obj.get("subscription")))
        return "customer linked" if row else "checkout for unknown organization"
    if kind in (
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ):
        customer = _str(obj.get("customer"))
        status = _str(obj.get("status"))
        if kind == "customer.subscription.deleted":
            status = "canceled"
        if not customer or not status:
            return "subscription event without customer/status"
        prices, period_end = _subscription_fields(obj)
        cancel = obj.get("cancel_at_period_end")
        row = await conn.fetchrow(
            q.APPLY_SUBSCRIPTION,
            customer,
            _str(obj.get("id")),
            status,
            period_end,
            cancel if isinstance(cancel, bool) else None,
            plan_for(settings, status, prices),
            created,
        )
        return (
            f"subscription applied (plan {row['plan_tier']})"
            if row
            else "subscription stale/unknown"
        )
    if kind in ("invoice.paid", "invoice.payment_failed"):
        customer = _str(obj.get("customer"))
        if not customer:
            return "invoice without customer"
        if kind == "invoice.paid":
            from_statuses, new = ["past_due", "unpaid", "incomplete"], "active"
        else:
            from_statuses, new = ["active", "trialing"], "past_due"
        await conn.execute(
            q.APPLY_INVOICE, customer, _str(obj.get("subscription")), from_statuses, new, created
        )
        return "invoice applied"
    return "ignored"


async def handle_webhook(
    pool: asyncpg.Pool, settings: Settings, raw: bytes, signature: str | None
) -> dict[str, Any]:
    """Verify, claim, apply → `{received: true, duplicate?: true}`.

    401 bad/missing/stale signature; 400 malformed event; 409 while another delivery of the same
    event is being processed; 503 SERVICE_UNAVAILABLE without STRIPE_BILLING_WEBHOOK_SECRET.
    An error while applying releases the claim and propagates (5xx: Stripe retries).
    """
    secret = settings.stripe_billing_webhook_secret
    if not secret:
        raise not_configured("Billing webhook (STRIPE_BILLING_WEBHOOK_SECRET)")
    try:
        verify(raw, signature, secret)
    except BadSignature as exc:
        raise AuthenticationFailed(f"Invalid Stripe signature: {exc}") from None
    event = parse_event(raw)
    event_id = event["id"]
    async with pool.acquire() as conn:
        claimed = await conn.fetchval(q.CLAIM_EVENT, event_id, float(STALE_CLAIM_SECS))
        if claimed is None:
            if await conn.fetchval(q.EVENT_STATUS, event_id) == "done":
                return {"received": True, "duplicate": True}
            raise Conflict("This event is already being processed")
        try:
            async with conn.transaction():
                outcome = await apply_event(conn, settings, event)
                await conn.execute(q.FINISH_EVENT, event_id)
        except BaseException:
            await conn.execute(q.RELEASE_EVENT, event_id)
            raise
    log.info("stripe event", event_id=event_id, type=event["type"], outcome=outcome)
    return {"received": True}
