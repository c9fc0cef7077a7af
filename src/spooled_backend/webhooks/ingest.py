"""Incoming webhooks become jobs (CONTRACT §7.13, §11): custom (organization token), GitHub
(`X-Hub-Signature-256`) and Stripe (`Stripe-Signature`) with per-organization secrets.

Every attempt against an existing organization is written to the inbound log
(`webhook_deliveries`): `created` / `duplicate` in the transaction that creates the job, and
`rejected` (with the reason) in a transaction of its own, since the request's is rolled back.
Jobs are created by `jobs.service.create_job` (scope, payload caps, daily and active-job quotas,
idempotency), with `spooled.job_source = 'incoming_webhook'` so `job.created` says where the job
came from. A provider's delivery id is the job's idempotency key (`github:<X-GitHub-Delivery>`,
Stripe's event `id`), so a verified delivery replayed or retried makes one job, not two.
Ingested jobs are not charged to the `queues` cap (§7.13), and the queue's own defaults apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError

from spooled_backend.config import Settings
from spooled_backend.core import tenancy
from spooled_backend.core.body import validation_error
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import (
    AuthenticationFailed,
    BadRequest,
    InvalidJson,
    NotFound,
    SpooledError,
    ValidationFailed,
)
from spooled_backend.core.events import Events
from spooled_backend.core.jsonvalue import check_storable, loads_strict
from spooled_backend.jobs.service import NewJob, create_job
from spooled_backend.webhooks import queries as q
from spooled_backend.webhooks import rules, signing
from spooled_backend.webhooks.schemas import CustomIngest

PROVIDERS = ("custom", "github", "stripe")
RESERVED_QUEUES = frozenset({"admin", "system", "internal", "root", "default"})
SOURCE = "incoming_webhook"


@dataclass(frozen=True)
class Org:
    id: str
    plan_tier: str
    custom_limits: dict[str, Any] | None
    webhook_token: str | None


@dataclass
class Attempt:
    """What is known about one inbound request so far (for the log)."""

    provider: str
    event_type: str
    queue_name: str | None = None
    delivery_id: str | None = None
    signature: str | None = None


async def load_org(conn: asyncpg.Connection, org_id: str) -> Org:
    """The live organization; 404 NOT_FOUND otherwise (nothing is logged: there is no owner)."""
    row = await conn.fetchrow(q.ORG_FOR_INGEST, org_id) if len(org_id) <= 64 else None
    if row is None:
        raise NotFound("Organization not found")
    return Org(row["id"], row["plan_tier"], row["custom_limits"], row["webhook_token"])


def _check_transport(settings: Settings, headers: Mapping[str, str]) -> None:
    """Production: the request must have reached the proxy over HTTPS (CONTRACT §7.13)."""
    if settings.is_production:
        proto = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
        if proto != "https":
            raise BadRequest("Webhooks must be sent over HTTPS")


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidJson(
            "Request body is empty",
            details=[{"field": "body", "message": "empty body", "code": "empty_body"}],
        )
    value = loads_strict(raw)
    check_storable(value, "")
    return value


def check_ingest_queue(name: str) -> str:
    """1–255 `[A-Za-z0-9._-]`, no `..`, no leading `.`/`-`, not a reserved name (§7.13)."""
    if not 1 <= len(name) <= 255:
        raise ValidationFailed("queue_name", "queue_name must be 1-255 characters", "length")
    if name[0] in ".-" or ".." in name or any(
        not (ch.isascii() and (ch.isalnum() or ch in "._-")) for ch in name
    ):
        raise ValidationFailed(
            "queue_name", "queue_name may contain only A-Z, a-z, 0-9, '.', '_' and '-', must not "
            "start with '.' or '-' and must not contain '..'", "queue_name",
        )
    if name.lower() in RESERVED_QUEUES:
        raise ValidationFailed("queue_name", f"queue_name '{name}' is reserved", "reserved")
    return name


def _check_event_type(value: str) -> str:
    if len(value) > 100 or any(not (ch.isascii() and (ch.isalnum() or ch in "._-")) for ch in value):
        raise ValidationFailed(
            "event_type", "event_type must be at most 100 characters of [A-Za-z0-9._-]",
            "event_type",
        )
    return value


def parse_custom(org: Org, raw: bytes, headers: Mapping[str, str], attempt: Attempt) -> NewJob:
    """Token first (a cleared token refuses everything), then the body (CONTRACT §7.13)."""
    given = headers.get("x-webhook-token")
    if not org.webhook_token:
        raise AuthenticationFailed("This organization has no webhook token; regenerate one")
    if not signing.tokens_equal(given, org.webhook_token):
        raise AuthenticationFailed("Missing or invalid X-Webhook-Token")
    data = _json(raw)
    if isinstance(data, dict) and isinstance(data.get("event_type"), str):
        attempt.event_type = data["event_type"][:100]
    if isinstance(data, dict) and isinstance(data.get("queue_name"), str):
        attempt.queue_name = data["queue_name"][:255]
    if not isinstance(data, dict):
        raise ValidationFailed("body", "Request body must be a JSON object", "invalid_type", 422)
    try:
        body = CustomIngest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    queue = check_ingest_queue(body.queue_name)
    attempt.event_type = _check_event_type(body.event_type or "custom")
    return NewJob(
        queue_name=queue, payload=body.payload, priority=body.priority or 0,
        idempotency_key=body.idempotency_key, charge_new_queue=False,
    )


def _optional_token(org: Org, headers: Mapping[str, str]) -> None:
    """GitHub/Stripe cannot send custom headers; when a caller does send `X-Webhook-Token`
    (the Node SDK can), it must be the organization's."""
    given = headers.get("x-webhook-token")
    if given is not None and not signing.tokens_equal(given, org.webhook_token):
        raise AuthenticationFailed("Invalid X-Webhook-Token")


def parse_github(
    org: Org, secret: str | None, raw: bytes, headers: Mapping[str, str], attempt: Attempt
) -> NewJob:
    """Queue `github-<event>`, payload = the JSON body, key `github:<X-GitHub-Delivery>`."""
    event = (headers.get("x-github-event") or "unknown").strip()[:100] or "unknown"
    attempt.event_type = event
    attempt.queue_name = rules.provider_queue("github", event)
    delivery = (headers.get("x-github-delivery") or "").strip()[:200] or None
    attempt.delivery_id = delivery
    attempt.signature = (headers.get("x-hub-signature-256") or "")[:200] or None
    if not secret:
        raise AuthenticationFailed(
            "No GitHub webhook secret is configured for this organization "
            "(PUT /api/v1/incoming-webhooks/github)"
        )
    try:
        signing.verify_github(secret, raw, headers.get("x-hub-signature-256"))
    except signing.BadSignature as exc:
        raise AuthenticationFailed(str(exc)) from None
    _optional_token(org, headers)
    payload = _json(raw)
    return NewJob(
        queue_name=attempt.queue_name, payload=payload,
        idempotency_key=f"github:{delivery}" if delivery else None, charge_new_queue=False,
    )


def parse_stripe(
    org: Org,
    secret: str | None,
    raw: bytes,
    headers: Mapping[str, str],
    attempt: Attempt,
    now: float | None = None,
) -> NewJob:
    """Queue `stripe-<type>`, payload = `data.object`, idempotency key = the event `id`."""
    attempt.signature = (headers.get("stripe-signature") or "")[:500] or None
    if not secret:
        raise AuthenticationFailed(
            "No Stripe webhook secret is configured for this organization "
            "(PUT /api/v1/incoming-webhooks/stripe)"
        )
    try:
        signing.verify_stripe(secret, raw, headers.get("stripe-signature"), now=now)
    except signing.BadSignature as exc:
        raise AuthenticationFailed(str(exc)) from None
    _optional_token(org, headers)
    event = _json(raw)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not event["type"]:
        raise ValidationFailed("type", "Stripe event must have a string 'type'", "missing_field")
    attempt.event_type = event["type"][:100]
    attempt.queue_name = rules.provider_queue("stripe", event["type"].replace(".", "-"))
    event_id = event.get("id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 255:
        raise ValidationFailed("id", "Stripe event must have a string 'id'", "missing_field")
    attempt.delivery_id = event_id
    data = event.get("data")
    if not isinstance(data, dict) or "object" not in data:
        raise ValidationFailed("data.object", "Stripe event has no data.object", "missing_field")
    return NewJob(
        queue_name=attempt.queue_name, payload=data["object"], idempotency_key=event_id,
        charge_new_queue=False,
    )


async def ingest(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    events: Events,
    tenant_role: str | None,
    org_id: str,
    provider: str,
    raw: bytes | SpooledError,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Verify, create the job, log the attempt → `{job_id, queue_name, status, created}`.

    `raw` is the body, or the error reading it raised (413 over 5 MiB), logged like the others.

    Raises NotFound (404 unknown organization), BadRequest (400 not HTTPS in production),
    AuthenticationFailed (401 token/signature/missing secret), InvalidJson / ValidationFailed
    (400/422 body), PayloadTooLarge (413), QuotaExceeded (429); each (but the 404) is logged
    as a `rejected` inbound delivery first."""
    org = await load_org(conn, org_id)
    await tenancy.bind_tenant(conn, org.id, tenant_role)
    attempt = Attempt(provider=provider, event_type=provider if provider == "custom" else "unknown")
    try:
        if isinstance(raw, SpooledError):
            raise raw
        _check_transport(settings, headers)
        if provider == "custom":
            job = parse_custom(org, raw, headers, attempt)
        else:
            secret = await conn.fetchval(q.INGEST_SECRET, org.id, provider)
            parse = parse_github if provider == "github" else parse_stripe
            job = parse(org, secret, raw, headers, attempt)
        auth = AuthContext(
            organization_id=org.id, api_key_id=f"webhook:{provider}", plan_tier=org.plan_tier,
            custom_limits=org.custom_limits,
        )
        await conn.execute(q.SET_JOB_SOURCE, SOURCE)
        job_id, created = await create_job(conn, settings, auth, job, events)
        state = await conn.fetchrow(q.JOB_STATE, job_id, org.id)
        await conn.execute(
            q.INSERT_INBOUND, org.id, provider, attempt.event_type, state["queue_name"], job_id,
            "created" if created else "duplicate", None, attempt.delivery_id, attempt.signature,
        )
    except SpooledError as exc:
        await log_rejection(pool, org.id, attempt, exc.message)
        raise
    return {"job_id": job_id, "queue_name": state["queue_name"], "status": state["status"],
            "created": created}


async def log_rejection(pool: asyncpg.Pool, org_id: str, attempt: Attempt, error: str) -> None:
    """Record a refused attempt in its own transaction (the request's is rolled back)."""
    async with pool.acquire() as conn:
        await conn.execute(
            q.INSERT_INBOUND, org_id, attempt.provider, attempt.event_type[:100],
            attempt.queue_name, None, "rejected", error[:500], attempt.delivery_id,
            attempt.signature,
        )


async def list_inbound(
    conn: asyncpg.Connection,
    auth: AuthContext,
    status: str | None,
    since: Any,
    queue_name: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """`GET /webhooks/deliveries`, newest first, never payloads or signatures. key*."""
    auth.require_unrestricted()
    if status is not None and status not in rules.INBOUND_STATUSES:
        raise ValidationFailed(
            "status", f"status must be one of: {', '.join(rules.INBOUND_STATUSES)}", "status"
        )
    rows = await conn.fetch(
        q.LIST_INBOUND, auth.organization_id, status, since, queue_name, limit, offset
    )
    return [{k: v for k, v in dict(r).items() if k != "error" or v is not None} for r in rows]


async def list_secrets(conn: asyncpg.Connection, auth: AuthContext) -> list[dict[str, Any]]:
    auth.require_unrestricted()
    rows = {r["provider"]: dict(r) for r in await conn.fetch(q.LIST_SECRETS, auth.organization_id)}
    return [
        {"provider": p, "configured": p in rows, **{k: v for k, v in rows.get(p, {}).items()
                                                    if k != "provider"}}
        for p in ("github", "stripe")
    ]


def _provider(provider: str) -> str:
    if provider not in ("github", "stripe"):
        raise NotFound("Unknown provider (github or stripe)")
    return provider


async def set_secret(
    conn: asyncpg.Connection, auth: AuthContext, provider: str, secret: str
) -> dict[str, Any]:
    auth.require_unrestricted()
    row = await conn.fetchrow(q.UPSERT_SECRET, auth.organization_id, _provider(provider), secret)
    return {"provider": row["provider"], "configured": True, "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


async def delete_secret(conn: asyncpg.Connection, auth: AuthContext, provider: str) -> None:
    auth.require_unrestricted()
    if await conn.fetchval(q.DELETE_SECRET, auth.organization_id, _provider(provider)) is None:
        raise NotFound("No secret is configured for this provider")
