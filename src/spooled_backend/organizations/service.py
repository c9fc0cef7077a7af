"""Organizations and their first API key (CONTRACT §7.3), plus the first-start bootstrap (§20 D2)."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

import asyncpg

from spooled_backend.api_keys.service import create_api_key
from spooled_backend.config import Settings
from spooled_backend.core.errors import AlreadyExists, ValidationFailed
from spooled_backend.core.jsonvalue import check_storable
from spooled_backend.organizations import queries as q

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
RESERVED_SLUGS = frozenset(
    [
        "admin",
        "api",
        "app",
        "auth",
        "dashboard",
        "docs",
        "help",
        "internal",
        "login",
        "logout",
        "metrics",
        "root",
        "settings",
        "signup",
        "status",
        "support",
        "system",
        "test",
        "www",
    ]
)


def new_webhook_token() -> str:
    """`whk_` + 32 URL-safe base64 characters (24 random bytes)."""
    return "whk_" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


__all__ = [
    "bootstrap_default_organization",
    "create_api_key",
    "create_organization",
    "slug_problem",
]


def slug_problem(slug: str) -> str | None:
    """Why `slug` is not acceptable (CONTRACT §7.3, B rules: 3–50, regex, not reserved)."""
    if not 3 <= len(slug) <= 50:
        return "slug must be 3-50 characters"
    if not SLUG_RE.match(slug):
        return "slug must be lowercase letters, digits and single hyphens, starting with a letter"
    if slug in RESERVED_SLUGS:
        return "This slug is reserved"
    return None


async def create_organization(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    name: str,
    slug: str,
    billing_email: str | None = None,
    plan_tier: str | None = None,
    settings_json: dict[str, Any] | None = None,
    custom_limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create an organization with its "Initial Admin Key" (queues `["*"]`) in one transaction.

    Returns `{organization, api_key: {id, key, name, created_at}}`. Raises ValidationFailed for
    bad names/slugs, AlreadyExists (409) for a taken slug or billing email.
    """
    name = name.strip()
    if not 3 <= len(name) <= 100:
        raise ValidationFailed("name", "name must be 3-100 characters", "length")
    check_storable(name, "name")
    if problem := slug_problem(slug):
        raise ValidationFailed("slug", problem, "slug")
    org_settings = dict(settings_json or {})
    # The ingest token is server-owned: always generated here, rotated only by regenerate.
    org_settings["webhook_token"] = new_webhook_token()
    async with conn.transaction():
        if await conn.fetchval(q.SLUG_TAKEN, slug):
            raise AlreadyExists("An organization with this slug already exists")
        if billing_email and await conn.fetchval(q.EMAIL_TAKEN, billing_email):
            raise AlreadyExists("This billing email is already used by another organization")
        try:
            org = await conn.fetchrow(
                q.INSERT_ORG,
                name,
                slug,
                plan_tier or settings.default_plan_tier,
                billing_email,
                org_settings,
                custom_limits,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                "An organization with this slug or billing email already exists"
            ) from None
        raw, key = await create_api_key(conn, settings, org["id"], "Initial Admin Key", ["*"])
    return {
        "organization": dict(org),
        "api_key": {
            "id": key["id"],
            "key": raw,
            "name": key["name"],
            "created_at": key["created_at"],
        },
    }


BOOTSTRAP_CUSTOM_LIMITS = {"rate_limit_requests_per_second": None, "rate_limit_burst": None}


async def bootstrap_default_organization(
    conn: asyncpg.Connection, settings: Settings
) -> dict[str, Any] | None:
    """First start (CONTRACT §20 D2): with no organization at all, create `default` on the
    enterprise plan with one unrestricted key. Returns the creation result, or None when the
    database already has organizations or bootstrap is not wanted in this environment."""
    wanted = settings.rust_env == "development" or settings.spooled_bootstrap_org
    if not wanted:
        return None
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('spooled:bootstrap'))")
        if await conn.fetchval(q.COUNT_ORGS):
            return None
        # The owner's private deployment: its request rate is never capped below what the
        # service itself can do (issue 8), so the plan's 500 req/s bucket is switched off.
        return await create_organization(
            conn, settings, name="Default Organization", slug="default", plan_tier="enterprise",
            custom_limits=BOOTSTRAP_CUSTOM_LIMITS,
        )
