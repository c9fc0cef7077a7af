"""Webhook REST routes (CONTRACT §6 #82–93, §7.12, §7.13): outgoing subscriptions and their
deliveries, job ingestion from custom senders, GitHub and Stripe, the inbound log, and the
per-organization ingestion secrets (`/incoming-webhooks/{provider}`, our extension, §20 D5).
HTTP only: parse, call the service, shape the answer."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from spooled_backend.core.body import parse_body, read_raw, validation_error
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.errors import SpooledError, ValidationFailed
from spooled_backend.core.openapi import NONE, STRIPE, UNRESTRICTED, WEBHOOK_TOKEN, doc
from spooled_backend.core.pagination import clamp_page
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.core.validators import UtcDatetime
from spooled_backend.webhooks import delivery, ingest, service
from spooled_backend.webhooks.schemas import (
    CreateOutgoingWebhook,
    CustomIngest,
    DeliveryOut,
    InboundDeliveryOut,
    IngestOut,
    IngestSecret,
    IngestSecretOut,
    OutgoingWebhookOut,
    DeliveryRetryOut,
    WebhookTestOut,
    UpdateOutgoingWebhook,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
_aware: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def _sender(state: State) -> delivery.Sender:
    return state.webhooks.sender  # type: ignore[no-any-return]


# ---- outgoing -------------------------------------------------------------------------------


@router.get("/outgoing-webhooks", **doc(list[OutgoingWebhookOut], auth=UNRESTRICTED))
async def list_outgoing(conn: Conn, auth: Auth) -> JSONBody:
    """All outgoing webhooks of the organization (secrets never returned). key*."""
    return json_response(await service.list_hooks(conn, auth))


@router.post("/outgoing-webhooks", status_code=201,
             **doc(OutgoingWebhookOut, body=CreateOutgoingWebhook, auth=UNRESTRICTED))
async def create_outgoing(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """201 OutgoingWebhook. 400 URL refused / unknown events / format; 429 `webhooks` cap."""
    body = await parse_body(request, CreateOutgoingWebhook)
    return json_response(await service.create_hook(conn, state.settings, auth, body), status=201)


@router.get("/outgoing-webhooks/{hook_id}",
            **doc(OutgoingWebhookOut, errors=(404,), auth=UNRESTRICTED))
async def get_outgoing(hook_id: str, conn: Conn, auth: Auth) -> JSONBody:
    return json_response(await service.get_hook(conn, auth, hook_id))


@router.put("/outgoing-webhooks/{hook_id}",
            **doc(OutgoingWebhookOut, body=UpdateOutgoingWebhook, errors=(404,), auth=UNRESTRICTED))
async def update_outgoing(
    hook_id: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """Partial update; `secret` omitted = keep, `null` = clear, string = replace."""
    body = await parse_body(request, UpdateOutgoingWebhook)
    return json_response(await service.update_hook(conn, state.settings, auth, hook_id, body))


@router.delete("/outgoing-webhooks/{hook_id}", status_code=204,
               **doc(None, errors=(404,), auth=UNRESTRICTED))
async def delete_outgoing(hook_id: str, conn: Conn, auth: Auth) -> Response:
    await service.delete_hook(conn, auth, hook_id)
    return empty_response()


@router.post("/outgoing-webhooks/{hook_id}/test",
             **doc(WebhookTestOut, errors=(400, 404), auth=UNRESTRICTED))
async def test_outgoing(hook_id: str, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """Send a signed `webhook.test` now; 200 with `success: false` when the receiver fails."""
    return json_response(
        await service.test_hook(conn, state.settings, auth, _sender(state), hook_id)
    )


@router.get("/outgoing-webhooks/{hook_id}/deliveries",
            **doc(list[DeliveryOut], errors=(400, 404), auth=UNRESTRICTED))
async def list_outgoing_deliveries(
    hook_id: str,
    conn: Conn,
    auth: Auth,
    status: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> JSONBody:
    """Newest first; `status` pending/success/failed, `limit` 1–100 (default 100), `offset`."""
    page = clamp_page(limit, offset, default=100, maximum=100)
    rows = await service.list_deliveries(conn, auth, hook_id, status, page.limit, page.offset)
    return json_response(rows)


@router.post("/outgoing-webhooks/{hook_id}/retry/{delivery_id}",
             **doc(DeliveryRetryOut, errors=(400, 404, 409), auth=UNRESTRICTED))
async def retry_outgoing_delivery(
    hook_id: str, delivery_id: str, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """Re-send a stored delivery once now → `{success, message}`."""
    return json_response(await service.retry_delivery(
        conn, state.settings, auth, _sender(state), hook_id, delivery_id
    ))


# ---- incoming -------------------------------------------------------------------------------


@router.get("/webhooks/deliveries",
            **doc(list[InboundDeliveryOut], errors=(400,), auth=UNRESTRICTED))
async def list_inbound_deliveries(
    conn: Conn,
    auth: Auth,
    status: str | None = None,
    since: str | None = None,
    queue_name: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> JSONBody:
    """The inbound log, newest first: `status` created/duplicate/rejected, `since` (RFC 3339,
    inclusive), `queue_name`, `limit` 1–100 (50), `offset`. key*."""
    page = clamp_page(limit, offset, default=50, maximum=100)
    since_at = None
    if since is not None:
        try:
            since_at = _aware.validate_python(since)
        except ValidationError as exc:
            err = validation_error(exc)
            raise ValidationFailed("since", err.details[0]["message"], "datetime") from None
    rows = await ingest.list_inbound(
        conn, auth, status, since_at, queue_name, page.limit, page.offset
    )
    return json_response(rows)


async def _ingest(provider: str, org_id: str, request: Request, state: State, conn: Conn) -> JSONBody:
    raw: bytes | SpooledError
    try:
        raw = await read_raw(request)
    except SpooledError as exc:  # 413: still logged against the organization
        raw = exc
    result = await ingest.ingest(
        conn, state.pool, state.settings, state.events, state.tenant_role, org_id, provider,
        raw, request.headers,
    )
    return json_response(result)


_INGEST_ERRORS = (400, 401, 404, 413, 422, 429)


@router.post("/webhooks/{org_id}/custom",
             **doc(IngestOut, body=CustomIngest, errors=_INGEST_ERRORS, auth=WEBHOOK_TOKEN))
async def ingest_custom(org_id: str, request: Request, state: State, conn: Conn) -> JSONBody:
    """`X-Webhook-Token` + `{queue_name, payload, event_type?, idempotency_key?, priority?}` →
    a job in that queue. A cleared token refuses every request."""
    return await _ingest("custom", org_id, request, state, conn)


@router.post("/webhooks/{org_id}/github", **doc(
    IngestOut, raw_body="application/json", errors=_INGEST_ERRORS, auth=NONE,
    description="Authenticated by `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the "
                "organization's GitHub secret, see `PUT /api/v1/incoming-webhooks/github`)."))
async def ingest_github(org_id: str, request: Request, state: State, conn: Conn) -> JSONBody:
    """GitHub delivery (`X-Hub-Signature-256` with the organization's GitHub secret) → a job in
    `github-<X-GitHub-Event>` with the body as payload; one job per `X-GitHub-Delivery`."""
    return await _ingest("github", org_id, request, state, conn)


@router.post("/webhooks/{org_id}/stripe",
             **doc(IngestOut, raw_body="application/json", errors=_INGEST_ERRORS, auth=STRIPE))
async def ingest_stripe(org_id: str, request: Request, state: State, conn: Conn) -> JSONBody:
    """Stripe event (`Stripe-Signature` with the organization's Stripe secret, 300 s / 60 s
    window) → a job in `stripe-<type>` with `data.object` as payload; one job per event id."""
    return await _ingest("stripe", org_id, request, state, conn)


@router.get("/incoming-webhooks", **doc(list[IngestSecretOut], auth=UNRESTRICTED))
async def list_ingest_secrets(conn: Conn, auth: Auth) -> JSONBody:
    """Which ingestion secrets are configured (never their values). key*."""
    return json_response(await ingest.list_secrets(conn, auth))


@router.put("/incoming-webhooks/{provider}",
            **doc(IngestSecretOut, body=IngestSecret, errors=(404,), auth=UNRESTRICTED))
async def set_ingest_secret(provider: str, request: Request, conn: Conn, auth: Auth) -> JSONBody:
    """`{secret}` (8–255 chars): the signing secret of `github` or `stripe` deliveries to
    `/webhooks/{org_id}/{provider}`. key*."""
    body = await parse_body(request, IngestSecret)
    return json_response(await ingest.set_secret(conn, auth, provider, body.secret))


@router.delete("/incoming-webhooks/{provider}", status_code=204,
               **doc(None, errors=(404,), auth=UNRESTRICTED))
async def delete_ingest_secret(provider: str, conn: Conn, auth: Auth) -> Response:
    """Remove a secret: that provider's deliveries are refused (401) until one is set."""
    await ingest.delete_secret(conn, auth, provider)
    return empty_response()
