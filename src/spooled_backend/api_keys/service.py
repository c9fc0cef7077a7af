"""API key administration (CONTRACT §7.5, §4.1): mint, list, read, update, revoke.

Keys are shown raw exactly once, at creation. Revocation is a soft `is_active = false`; it takes
effect on the very next request on every replica because authentication re-reads the key row
on every request (auth/service.py). The api-key routes are unrestricted-key only (key*).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from spooled_backend.api_keys import queries as q
from spooled_backend.api_keys.schemas import CreateApiKey, UpdateApiKey
from spooled_backend.auth import keys
from spooled_backend.config import Settings
from spooled_backend.core.errors import NotFound, ValidationFailed
from spooled_backend.core.validators import parse_uuid_id
from spooled_backend.organizations import quotas


async def create_api_key(
    conn: asyncpg.Connection,
    settings: Settings,
    org_id: str,
    name: str,
    queues: list[str],
    rate_limit: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, asyncpg.Record]:
    """Mint and store a key (`sk_live_` in production, `sk_test_` otherwise, §21 R2) → (raw key, row).

    No quota check and no validation: callers (org creation, `create_key`, admin) do those.
    The bcrypt hash (cost `API_KEY_BCRYPT_COST`) runs in a thread.
    """
    raw = keys.generate_api_key(settings.api_key_prefix)
    key_hash = await asyncio.to_thread(keys.hash_key, raw, settings.api_key_bcrypt_cost)
    row = await conn.fetchrow(
        q.INSERT_API_KEY,
        org_id,
        key_hash,
        raw[:8],
        keys.lookup_hash(raw),
        name,
        queues,
        rate_limit,
        expires_at,
    )
    return raw, row


def _check_future(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValidationFailed("expires_at", "expires_at must be in the future", "future")


def created_body(raw: str, row: asyncpg.Record) -> dict[str, Any]:
    """201 body `{id, key, name, created_at, expires_at, queues, key_prefix}`."""
    return {
        "id": row["id"],
        "key": raw,
        "name": row["name"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "queues": list(row["queues"]),
        "key_prefix": row["key_prefix"],
    }


def key_view(row: asyncpg.Record) -> dict[str, Any]:
    """ApiKey object: `{id, organization_id, name, key_prefix, queues, rate_limit, is_active,
    created_at, last_used, expires_at}` (never the hash)."""
    out = dict(row)
    out["queues"] = list(out["queues"] or [])
    return out


async def create_key(
    conn: asyncpg.Connection,
    settings: Settings,
    org: quotas.PlanSubject,
    body: CreateApiKey,
    *,
    default_queues: list[str] | None = None,
    charge_quota: bool = True,
) -> dict[str, Any]:
    """Create a key for `org` → the 201 body. Omitted `queues` ⇒ `default_queues` (`[]` = all).

    Raises ValidationFailed (past `expires_at`), QuotaExceeded (`api_keys` cap, 429) when
    `charge_quota`. The cap is checked and the row inserted under one advisory lock.
    """
    _check_future(body.expires_at)
    queues = body.queues if body.queues is not None else list(default_queues or [])
    async with conn.transaction():
        if charge_quota:
            await quotas.reserve(conn, settings, org, "api_keys", 1)
        raw, row = await create_api_key(
            conn, settings, org.organization_id, body.name, queues, body.rate_limit, body.expires_at
        )
    return created_body(raw, row)


async def list_keys(conn: asyncpg.Connection, org_id: str) -> list[dict[str, Any]]:
    """All keys of the org, revoked ones included, newest first, at most 100."""
    return [key_view(r) for r in await conn.fetch(q.LIST_API_KEYS, org_id)]


async def get_key(conn: asyncpg.Connection, org_id: str, key_id: str) -> dict[str, Any]:
    """One key of the org; NotFound for unknown ids and other organizations' keys."""
    row = await conn.fetchrow(q.GET_API_KEY, parse_uuid_id(key_id, "API key"), org_id)
    if row is None:
        raise NotFound("API key not found")
    return key_view(row)


async def update_key(
    conn: asyncpg.Connection,
    settings: Settings,
    org: quotas.PlanSubject,
    key_id: str,
    body: UpdateApiKey,
) -> dict[str, Any]:
    """Apply the fields present in `body` (name, queues, rate_limit, is_active, expires_at).

    `null` clears `rate_limit`/`expires_at`; `null` for name/queues/is_active → 400.
    Re-activating a revoked key is charged to the `api_keys` cap (429). NotFound otherwise.
    """
    fields = body.model_fields_set
    for name in ("name", "queues", "is_active"):
        if name in fields and getattr(body, name) is None:
            raise ValidationFailed(name, f"{name} cannot be null", "null")
    if "expires_at" in fields:
        _check_future(body.expires_at)
    key_id = parse_uuid_id(key_id, "API key")
    async with conn.transaction():
        current = await conn.fetchrow(q.LOCK_API_KEY, key_id, org.organization_id)
        if current is None:
            raise NotFound("API key not found")
        if body.is_active and not current["is_active"]:
            await quotas.reserve(conn, settings, org, "api_keys", 1)
        row = await conn.fetchrow(
            q.UPDATE_API_KEY,
            key_id,
            org.organization_id,
            "name" in fields,
            body.name,
            "queues" in fields,
            body.queues,
            "rate_limit" in fields,
            body.rate_limit,
            "is_active" in fields,
            body.is_active,
            "expires_at" in fields,
            body.expires_at,
        )
    return key_view(row)


async def revoke_key(conn: asyncpg.Connection, org_id: str, key_id: str) -> None:
    """Soft revoke (`is_active = false`); idempotent for the org's own keys, else NotFound."""
    if await conn.fetchval(q.REVOKE_API_KEY, parse_uuid_id(key_id, "API key"), org_id) is None:
        raise NotFound("API key not found")


async def deactivate_org_keys(conn: asyncpg.Connection, org_id: str) -> list[str]:
    """Deactivate every key of an organization (org deletion); returns their ids."""
    return [r["id"] for r in await conn.fetch(q.DEACTIVATE_ORG_KEYS, org_id)]
