"""Outgoing webhooks: subscriptions, delivery history, test sends, manual retries, and the rule
for recording an attempt (CONTRACT §7.12, §10). Imports no web framework.

Functions take an asyncpg connection inside the caller's transaction. Sends go through a
`delivery.Sender` (SSRF-pinned, bounded); `record_attempt` is the one place that decides what
an attempt's outcome means for the delivery (success / retry later / failed) and the hook
(`failure_count`, auto-disable after 20 consecutive failed deliveries).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from spooled_backend.core.responses import rfc3339
from spooled_backend.organizations import quotas
from spooled_backend.webhooks import delivery, rules, ssrf
from spooled_backend.webhooks import queries as q
from spooled_backend.webhooks.schemas import CreateOutgoingWebhook, UpdateOutgoingWebhook

CLAIM_LEASE_SECS = 60.0  # a claimed delivery is re-sent by anyone once this passes


def _hook(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["events"] = list(out["events"])
    return out


def _check_target(settings: Settings, url: str) -> None:
    try:
        ssrf.check_url(url, settings.is_production)
    except ssrf.BlockedTarget as exc:
        raise ValidationFailed("url", str(exc), "url") from None


def _hook_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound("Webhook not found") from None


async def list_hooks(conn: asyncpg.Connection, auth: AuthContext) -> list[dict[str, Any]]:
    auth.require_unrestricted()
    return [_hook(r) for r in await conn.fetch(q.LIST_HOOKS, auth.organization_id)]


async def get_hook(conn: asyncpg.Connection, auth: AuthContext, hook_id: str) -> dict[str, Any]:
    auth.require_unrestricted()
    row = await conn.fetchrow(q.GET_HOOK, _hook_uuid(hook_id), auth.organization_id)
    if row is None:
        raise NotFound("Webhook not found")
    return _hook(row)


async def create_hook(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext, body: CreateOutgoingWebhook
) -> dict[str, Any]:
    """201 OutgoingWebhook. 400 bad URL/events, 429 `webhooks` cap (enabled hooks count)."""
    auth.require_unrestricted()
    _check_target(settings, body.url)
    if body.enabled:
        await quotas.reserve(conn, settings, auth, "webhooks")
    row = await conn.fetchrow(
        q.INSERT_HOOK, auth.organization_id, body.name, body.url, body.events,
        body.secret or None, body.enabled, body.format or "json",
    )
    return _hook(row)


async def update_hook(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    hook_id: str,
    body: UpdateOutgoingWebhook,
) -> dict[str, Any]:
    """Omitted fields are kept; `secret: null` clears it. Enabling re-checks the cap (429)."""
    auth.require_unrestricted()
    hook_id = _hook_uuid(hook_id)
    enabled = await conn.fetchval(q.LOCK_HOOK, hook_id, auth.organization_id)
    if enabled is None:
        raise NotFound("Webhook not found")
    if body.url is not None:
        _check_target(settings, body.url)
    if body.enabled and not enabled:
        await quotas.reserve(conn, settings, auth, "webhooks")
    set_secret = "secret" in body.model_fields_set
    row = await conn.fetchrow(
        q.UPDATE_HOOK, hook_id, auth.organization_id, body.name, body.url, body.events,
        body.enabled, body.format, set_secret, body.secret or None,
    )
    return _hook(row)


async def delete_hook(conn: asyncpg.Connection, auth: AuthContext, hook_id: str) -> None:
    auth.require_unrestricted()
    if await conn.fetchval(q.DELETE_HOOK, _hook_uuid(hook_id), auth.organization_id) is None:
        raise NotFound("Webhook not found")


async def list_deliveries(
    conn: asyncpg.Connection,
    auth: AuthContext,
    hook_id: str,
    status: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Newest first; `status` pending/success/failed (else 400); `limit` ≤ 100."""
    await get_hook(conn, auth, hook_id)
    if status is not None and status not in rules.DELIVERY_STATUSES:
        raise ValidationFailed(
            "status", f"status must be one of: {', '.join(rules.DELIVERY_STATUSES)}", "status"
        )
    rows = await conn.fetch(
        q.LIST_DELIVERIES, _hook_uuid(hook_id), auth.organization_id, status, limit, offset
    )
    return [dict(r) for r in rows]


async def test_hook(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    sender: delivery.Sender,
    hook_id: str,
) -> dict[str, Any]:
    """Send `webhook.test` now: `{success, status_code?, response_time_ms, error?}`."""
    auth.require_unrestricted()
    hook = await conn.fetchrow(q.GET_HOOK_FOR_SEND, _hook_uuid(hook_id), auth.organization_id)
    if hook is None:
        raise NotFound("Webhook not found")
    _check_target(settings, hook["url"])
    document = {
        "event": "webhook.test",
        "webhook_id": hook["id"],
        "organization_id": auth.organization_id,
        "timestamp": rfc3339(datetime.now(UTC)),
        "test": True,
        "message": "This is a test webhook from Spooled",
    }
    outcome = await sender.send(delivery.Request(
        url=hook["url"], event="webhook.test", body=document, fmt=hook["format"],
        secret=hook["secret"], user_agent=delivery.TEST_USER_AGENT,
    ))
    result: dict[str, Any] = {"success": outcome.success, "response_time_ms": outcome.elapsed_ms}
    if outcome.status_code is not None:
        result["status_code"] = outcome.status_code
    if outcome.error is not None:
        result["error"] = outcome.error
    return result


def request_for(row: asyncpg.Record | dict[str, Any]) -> delivery.Request | str:
    """What to send for a claimed delivery row, or why it cannot be sent any more."""
    if row["kind"] == "completion":
        url, secret, fmt = row["target_url"], row["target_secret"], "json"
    else:
        if row["hook_url"] is None:
            return "Webhook was deleted"
        if not row["hook_enabled"]:
            return "Webhook is disabled"
        url, secret, fmt = row["hook_url"], row["hook_secret"], row["hook_format"]
    return delivery.Request(
        url=url, event=row["event"], body=row["payload"], fmt=fmt, secret=secret,
        attempt=row["attempts"], delivery_id=row["id"],
    )


async def record_attempt(
    conn: asyncpg.Connection,
    settings: Settings,
    row: asyncpg.Record | dict[str, Any],
    outcome: delivery.Outcome,
    *,
    was_failed: bool = False,
) -> str | None:
    """Store one attempt's outcome; returns the delivery's new status (None when the claim was
    lost: another process took the row after the lease ran out, and its result wins).

    Success → `success`. A failure retries with backoff (§10.3, `rules.backoff_secs`) until
    `OUTGOING_WEBHOOK_MAX_ATTEMPTS` attempts, then `failed`, which counts one failed delivery
    toward auto-disable. A manual retry of an already failed delivery stays `failed` and is not
    counted again."""
    attempts = int(row["attempts"])
    if outcome.success:
        status, finished_failed = "success", False
    elif was_failed:
        status, finished_failed = "failed", False
    elif attempts >= settings.outgoing_webhook_max_attempts:
        status, finished_failed = "failed", True
    else:
        status, finished_failed = "pending", False
    recorded = await conn.fetchrow(
        q.RECORD_ATTEMPT, row["id"], row["claim_token"], status, outcome.status_code,
        outcome.response_body, outcome.error, rules.backoff_secs(attempts), outcome.success,
        finished_failed, rules.AUTO_DISABLE_AFTER_FAILURES,
    )
    return status if recorded is not None and recorded["recorded"] else None


async def abandon(conn: asyncpg.Connection, row: asyncpg.Record | dict[str, Any], why: str) -> None:
    await conn.execute(q.ABANDON, row["id"], row["claim_token"], why)


def _uuid_or_400(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"{field} must be a UUID") from None


async def retry_delivery(
    conn: asyncpg.Connection,
    settings: Settings,
    auth: AuthContext,
    sender: delivery.Sender,
    hook_id: str,
    delivery_id: str,
) -> dict[str, Any]:
    """Re-send a stored delivery once now (attempt = attempts + 1): `{success, message}`.

    400 non-UUID ids, already successful, or 10 attempts used; 404 unknown hook/delivery;
    409 while the delivery loop is sending it. The row stays locked during the send."""
    auth.require_unrestricted()
    hook_id = _uuid_or_400(hook_id, "webhook id")
    delivery_id = _uuid_or_400(delivery_id, "delivery id")
    await get_hook(conn, auth, hook_id)
    state = await conn.fetchrow(q.GET_DELIVERY_STATE, delivery_id, hook_id, auth.organization_id)
    if state is None:
        raise NotFound("Delivery not found")
    if state["status"] == "success":
        raise BadRequest("Delivery already succeeded")
    if state["attempts"] >= rules.MANUAL_RETRY_MAX_ATTEMPTS:
        raise BadRequest(
            f"Delivery has used the maximum of {rules.MANUAL_RETRY_MAX_ATTEMPTS} attempts"
        )
    row = await conn.fetchrow(
        q.CLAIM_ONE, delivery_id, hook_id, auth.organization_id, CLAIM_LEASE_SECS,
        rules.MANUAL_RETRY_MAX_ATTEMPTS,
    )
    if row is None:
        raise Conflict("Delivery is being sent right now; try again in a moment")
    request = request_for(row)
    if isinstance(request, str):
        # A disabled hook can still be retried by hand: send to its URL.
        request = delivery.Request(
            url=row["hook_url"], event=row["event"], body=row["payload"], fmt=row["hook_format"],
            secret=row["hook_secret"], attempt=row["attempts"], delivery_id=row["id"],
        )
    outcome = await sender.send(request)
    await record_attempt(conn, settings, row, outcome, was_failed=state["status"] == "failed")
    if outcome.success:
        return {"success": True, "message": "Delivery succeeded"}
    return {"success": False, "message": f"Delivery failed: {outcome.error}"}
