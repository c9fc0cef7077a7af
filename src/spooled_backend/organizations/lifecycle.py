"""An organization after creation: read, update, delete, members, ingest token (CONTRACT §7.3).

Every function takes the caller's `AuthContext`; an id other than the caller's organization is
answered exactly like an unknown id (404), so nothing about other organizations leaks.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from spooled_backend.api_keys.service import deactivate_org_keys
from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import AlreadyExists, Conflict, NotFound, ValidationFailed
from spooled_backend.core.jsonvalue import check_storable, json_size
from spooled_backend.organizations import queries as q
from spooled_backend.organizations.schemas import UpdateOrganization
from spooled_backend.organizations.service import new_webhook_token

SETTINGS_MAX_BYTES = 64 * 1024
SUMMARY_KEYS = ("id", "name", "slug", "plan_tier", "created_at")


def org_view(row: asyncpg.Record, *, redact_token: bool = False) -> dict[str, Any]:
    """Organization object; `settings.webhook_token` removed when `redact_token`."""
    org = dict(row)
    settings = org.get("settings")
    if isinstance(settings, dict):
        settings = dict(settings)
        if redact_token:
            settings.pop("webhook_token", None)
        org["settings"] = settings
    elif settings is None:
        org["settings"] = {}
    return org


def replace_settings(stored: Any, new: Any) -> dict[str, Any]:
    """New org settings replacing `stored`, keeping the server-owned `webhook_token` (a token in
    `new` is ignored). 400 unless `new` is a JSON object of at most 64 KiB (CONTRACT §7.3)."""
    if not isinstance(new, dict):
        raise ValidationFailed("settings", "settings must be a JSON object", "invalid_type")
    check_storable(new, "settings")
    out = dict(new)
    old = stored if isinstance(stored, dict) else {}
    if "webhook_token" in old:
        out["webhook_token"] = old["webhook_token"]
    else:
        out.pop("webhook_token", None)
    if json_size(out) > SETTINGS_MAX_BYTES:
        raise ValidationFailed("settings", "settings must be at most 64 KiB", "length")
    return out


EMAIL_TAKEN = "This billing email is already used by another organization"


def validated_name(fields: set[str], raw: str | None) -> str | None:
    """The stripped new name when `name` was sent: 3–100 characters (400 otherwise, also for
    an explicit null), storable in PostgreSQL. None when the body has no name."""
    name = raw.strip() if raw is not None else None
    if "name" in fields and (name is None or not 3 <= len(name) <= 100):
        raise ValidationFailed("name", "name must be 3-100 characters", "length")
    if name is not None:
        check_storable(name, "name")
    return name


async def write_org_update(
    conn: asyncpg.Connection, org_id: str, email: str | None, sql: str, *args: Any
) -> asyncpg.Record:
    """Run an organization UPDATE (`sql` with `$1` = org id, then `args`) after checking that a
    new billing email is not used by another live organization; 409 when it is (the unique
    index answers the same under a race). Returns the updated row."""
    if email is not None and await conn.fetchval(q.EMAIL_TAKEN_BY_OTHER, email, org_id):
        raise AlreadyExists(EMAIL_TAKEN)
    try:
        row: asyncpg.Record = await conn.fetchrow(sql, org_id, *args)
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(EMAIL_TAKEN) from None
    return row


async def own_org(conn: asyncpg.Connection, auth: AuthContext, org_id: str) -> asyncpg.Record:
    """The caller's live organization row when `org_id` is theirs; NotFound otherwise."""
    if org_id != auth.organization_id:
        raise NotFound("Organization not found")
    row = await conn.fetchrow(q.GET_LIVE_ORG, org_id)
    if row is None:
        raise NotFound("Organization not found")
    return row


async def summaries(conn: asyncpg.Connection, auth: AuthContext) -> list[dict[str, Any]]:
    """`[{id, name, slug, plan_tier, created_at}]`: only the caller's organization."""
    row = await conn.fetchrow(q.GET_LIVE_ORG, auth.organization_id)
    return [] if row is None else [{k: row[k] for k in SUMMARY_KEYS}]


async def get_organization(
    conn: asyncpg.Connection, auth: AuthContext, org_id: str
) -> dict[str, Any]:
    """Organization; scoped keys do not see `settings.webhook_token`. 404 for other ids."""
    row = await own_org(conn, auth, org_id)
    return org_view(row, redact_token=not auth.unrestricted)


async def update_organization(
    conn: asyncpg.Connection, auth: AuthContext, org_id: str, body: UpdateOrganization
) -> dict[str, Any]:
    """PUT: `name` (3–100), `billing_email` (unique among live orgs, 409), `settings`
    (object ≤64 KiB, replaces the stored one; the server-owned `webhook_token` is kept whatever
    the body says). `null` clears `billing_email`; `null` name/settings → 400. Unrestricted only.
    """
    auth.require_unrestricted()
    fields = body.model_fields_set
    name = validated_name(fields, body.name)
    if "settings" in fields and not isinstance(body.settings, dict):
        raise ValidationFailed("settings", "settings must be a JSON object", "invalid_type")
    async with conn.transaction():
        if org_id != auth.organization_id:
            raise NotFound("Organization not found")
        current = await conn.fetchrow(q.LOCK_ORG, org_id)
        if current is None or current["plan_tier"] == "deleted":
            raise NotFound("Organization not found")
        if not fields:
            return org_view(current)  # nothing to change: updated_at stays
        new_settings = None
        if body.settings is not None:
            new_settings = replace_settings(current["settings"], body.settings)
        row = await write_org_update(
            conn,
            org_id,
            body.billing_email,
            q.UPDATE_ORG,
            "name" in fields,
            name,
            "billing_email" in fields,
            body.billing_email,
            new_settings is not None,
            new_settings,
        )
    return org_view(row)


async def delete_organization(conn: asyncpg.Connection, auth: AuthContext, org_id: str) -> None:
    """Soft delete: `plan_tier = 'deleted'` and every key deactivated, so the organization can
    no longer authenticate. 409 while it has active jobs (pending/scheduled/processing),
    active workers (healthy/degraded/draining) or active schedules. Unrestricted only."""
    auth.require_unrestricted()
    async with conn.transaction():
        if org_id != auth.organization_id:
            raise NotFound("Organization not found")
        current = await conn.fetchrow(q.LOCK_ORG, org_id)
        if current is None or current["plan_tier"] == "deleted":
            raise NotFound("Organization not found")
        active = await conn.fetchrow(q.ACTIVE_RESOURCES, org_id)
        blockers = [
            f"{active[key]} {label}"
            for key, label in (
                ("active_jobs", "active jobs"),
                ("active_workers", "active workers"),
                ("active_schedules", "active schedules"),
            )
            if active[key]
        ]
        if blockers:
            raise Conflict(
                "Organization still has "
                + ", ".join(blockers)
                + "; cancel or finish them before deleting"
            )
        await conn.execute(q.SOFT_DELETE_ORG, org_id)
        await deactivate_org_keys(conn, org_id)


async def list_members(
    conn: asyncpg.Connection, auth: AuthContext, org_id: str
) -> list[dict[str, Any]]:
    """Members synthesised from active, unexpired API keys: `{id, user_id, email, name, role,
    joined_at, invited_by}`; id = user_id = key id, role `owner` for unrestricted keys.

    `email` is the billing email, or `""` when the org has none (the SDK requires a string).
    """
    auth.require_unrestricted()
    org = await own_org(conn, auth, org_id)
    email = org["billing_email"] or ""
    members = []
    for key in await conn.fetch(q.LIST_MEMBER_KEYS, org_id):
        queues = list(key["queues"] or [])
        members.append(
            {
                "id": key["id"],
                "user_id": key["id"],
                "email": email,
                "name": key["name"],
                "role": "owner" if not queues or "*" in queues else "member",
                "joined_at": key["created_at"],
                "invited_by": None,
            }
        )
    return members


def webhook_url(settings: Settings, org_id: str) -> str:
    """`<EXTERNAL_URL or https://api.spooled.cloud>/api/v1/webhooks/<org_id>/custom`."""
    base = (settings.external_url or "https://api.spooled.cloud").rstrip("/")
    return f"{base}/api/v1/webhooks/{org_id}/custom"


async def get_webhook_token(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext
) -> dict[str, Any]:
    """`{webhook_token: str|null, webhook_url}` of the caller's org. Unrestricted only."""
    auth.require_unrestricted()
    org = await own_org(conn, auth, auth.organization_id)
    org_settings = org["settings"] if isinstance(org["settings"], dict) else {}
    token = org_settings.get("webhook_token")
    return token_view(settings, auth.organization_id, token if isinstance(token, str) else None)


def token_view(settings: Settings, org_id: str, token: str | None) -> dict[str, Any]:
    """`{webhook_token, token, webhook_url}`: `token` repeats the value for the Node SDK (§21 R4)."""
    return {"webhook_token": token, "token": token, "webhook_url": webhook_url(settings, org_id)}


async def regenerate_webhook_token(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext
) -> dict[str, Any]:
    """Rotate the ingest token (new `whk_…`, persisted) → `{webhook_token, webhook_url}`."""
    auth.require_unrestricted()
    token = new_webhook_token()
    if await conn.fetchval(q.SET_WEBHOOK_TOKEN, auth.organization_id, token) is None:
        raise NotFound("Organization not found")
    return token_view(settings, auth.organization_id, token)


async def clear_webhook_token(
    conn: asyncpg.Connection, settings: Settings, auth: AuthContext
) -> dict[str, Any]:
    """Remove the ingest token (CONTRACT §21 R3) → `{webhook_token: null, token: null,
    webhook_url}`. Unrestricted keys only; incoming custom webhooks are refused until a new
    token is generated."""
    auth.require_unrestricted()
    if await conn.fetchval(q.CLEAR_WEBHOOK_TOKEN, auth.organization_id) is None:
        raise NotFound("Organization not found")
    return token_view(settings, auth.organization_id, None)
