"""JWT sessions (CONTRACT §4.2, §7.2): login, refresh, logout, me, validate, and the check of an
access token on protected routes. Imports no web framework and no Redis client (revocation goes
through `RevocationStore`)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from spooled_backend.auth import queries as q
from spooled_backend.auth import tokens
from spooled_backend.auth.service import (
    VerifiedKeyCache,
    authenticate_api_key,
    context_from_key_row,
)
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import ServiceUnavailable, Unauthorized

INVALID_TOKEN = "Invalid or expired token"
REVOKED = "Token has been revoked"


class Revocations(Protocol):
    """What sessions need from the revocation store (auth/revocation.py)."""

    @property
    def available(self) -> bool: ...

    async def is_revoked(self, jti: str, sid: str | None) -> bool: ...

    async def revoke(
        self, tokens: list[tuple[str, int]], sessions: list[tuple[str, int]]
    ) -> None: ...


def _key_usable(row: asyncpg.Record | None, org_id: str) -> bool:
    if row is None or not row["is_active"] or row["plan_tier"] == "deleted":
        return False
    if row["organization_id"] != org_id:
        return False
    expires = row["expires_at"]
    return expires is None or expires > datetime.now(UTC)


def token_response(access: str, refresh: str | None, lifetimes: tokens.Lifetimes) -> dict[str, Any]:
    """`{access_token, refresh_token?, token_type: "Bearer", expires_in, refresh_expires_in?}`."""
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetimes.access_seconds,
    }
    if refresh is not None:
        body["refresh_token"] = refresh
        body["refresh_expires_in"] = lifetimes.refresh_seconds
    return body


async def login(
    conn: asyncpg.Connection,
    secret: str,
    lifetimes: tokens.Lifetimes,
    cache: VerifiedKeyCache,
    raw_key: str,
) -> dict[str, Any]:
    """Exchange an API key for an access+refresh pair of a new session (`POST /auth/login`).

    Raises Unauthorized ("Invalid credentials", `error: "unauthorized"`) for unknown, inactive
    or expired keys and keys of deleted organizations. No bcrypt runs for a value that fails the
    cheap lookup (auth/service.py).
    """
    try:
        auth = await authenticate_api_key(conn, raw_key, cache)
    except Unauthorized:
        raise Unauthorized("Invalid credentials", extra={"error": "unauthorized"}) from None
    access, refresh, _sid = tokens.issue_pair(
        secret, lifetimes, org_id=auth.organization_id, api_key_id=auth.api_key_id,
        queues=list(auth.queues),
    )
    return token_response(access, refresh, lifetimes)


async def issue_for_key(
    secret: str, lifetimes: tokens.Lifetimes, org_id: str, api_key_id: str,
    queues: list[str], email: str | None = None,
) -> dict[str, Any]:
    """A new session for a key already known to be usable (email login, signup)."""
    access, refresh, _sid = tokens.issue_pair(
        secret, lifetimes, org_id=org_id, api_key_id=api_key_id, queues=queues, email=email
    )
    return token_response(access, refresh, lifetimes)


async def authenticate_access_token(
    conn: asyncpg.Connection, secret: str, revocations: Revocations, raw_token: str
) -> AuthContext:
    """The middleware checks of CONTRACT §4.2 for a Bearer JWT on a protected route.

    Signature + `exp` + `nbf` (HS256 only); `token_type == access`; neither the `jti` nor the
    session `sid` revoked; the referenced API key re-read now (active, unexpired, same org, org
    not deleted) and its CURRENT queues used. Raises Unauthorized (401) otherwise.
    """
    try:
        claims = tokens.decode(raw_token, secret, expected_type=tokens.ACCESS)
    except tokens.TokenError:
        raise Unauthorized(INVALID_TOKEN) from None
    if await revocations.is_revoked(claims.jti, claims.sid):
        raise Unauthorized(REVOKED)
    row = await conn.fetchrow(q.KEY_BY_ID, claims.api_key_id)
    if not _key_usable(row, claims.org_id):
        raise Unauthorized("API key for this token is no longer valid")
    assert row is not None
    return replace(context_from_key_row(row), via_jwt=True, extra={"claims": claims})


async def refresh(
    conn: asyncpg.Connection,
    secret: str,
    lifetimes: tokens.Lifetimes,
    revocations: Revocations,
    refresh_token: str,
) -> dict[str, Any]:
    """`POST /auth/refresh` → `{access_token, token_type, expires_in}`: new `jti`, same `sid`.

    Raises Unauthorized when the value is not a valid refresh token, is revoked (its `jti` or its
    session), or its key is inactive, expired or deleted.
    """
    try:
        claims = tokens.decode(refresh_token, secret, expected_type=tokens.REFRESH)
    except tokens.TokenError:
        raise Unauthorized("Invalid refresh token") from None
    if await revocations.is_revoked(claims.jti, claims.sid):
        raise Unauthorized(REVOKED)
    row = await conn.fetchrow(q.KEY_BY_ID, claims.api_key_id)
    if not _key_usable(row, claims.org_id):
        raise Unauthorized("API key for this token is no longer valid")
    assert row is not None
    access = tokens.issue_access(
        secret, lifetimes, org_id=claims.org_id, api_key_id=claims.api_key_id,
        queues=list(row["queues"] or ()), sid=claims.sid or str(uuid.uuid4()), email=claims.email,
    )
    return token_response(access, None, lifetimes)


async def logout(
    secret: str,
    lifetimes: tokens.Lifetimes,
    revocations: Revocations,
    auth: AuthContext,
    refresh_token: str | None,
) -> None:
    """Revoke the caller's access `jti`, its whole session `sid`, and a supplied refresh token.

    `auth` must come from an access JWT (Unauthorized otherwise: an API key cannot be logged out).
    A supplied refresh token that does not verify, or belongs to another organization, is
    ignored. Raises ServiceUnavailable (503) without Redis (CONTRACT §4.2).
    """
    claims = auth.extra.get("claims")
    if not auth.via_jwt or not isinstance(claims, tokens.Claims):
        raise Unauthorized("Logout requires an access token")
    if not revocations.available:
        raise ServiceUnavailable(getattr(
            revocations, "unavailable_message",
            "Logout requires Redis, which is not configured (REDIS_URL is not set)",
        ))
    revoke_tokens = [(claims.jti, claims.remaining_seconds())]
    sessions: list[tuple[str, int]] = []
    if claims.sid:
        sessions.append((claims.sid, lifetimes.refresh_seconds))
    if refresh_token:
        try:
            other = tokens.decode(refresh_token, secret)
        except tokens.TokenError:
            other = None
        if other is not None and other.org_id == claims.org_id:
            revoke_tokens.append((other.jti, other.remaining_seconds()))
            if other.sid and other.sid != claims.sid:
                sessions.append((other.sid, lifetimes.refresh_seconds))
    await revocations.revoke(revoke_tokens, sessions)


async def me(conn: asyncpg.Connection, auth: AuthContext) -> dict[str, Any]:
    """`GET /auth/me`: who the access token speaks for (CONTRACT §7.2); JWT only (else 401)."""
    claims = auth.extra.get("claims")
    if not auth.via_jwt or not isinstance(claims, tokens.Claims):
        raise Unauthorized("This endpoint requires an access token (JWT), not an API key")
    org = await conn.fetchrow(q.ORG_SUMMARY, auth.organization_id)
    return {
        "organization_id": auth.organization_id,
        "api_key_id": auth.api_key_id,
        "queues": list(auth.queues),
        "issued_at": datetime.fromtimestamp(claims.iat, UTC),
        "expires_at": datetime.fromtimestamp(claims.exp, UTC),
        "organization": dict(org) if org is not None else None,
    }


async def validate(secret: str, revocations: Revocations, token: str) -> dict[str, Any]:
    """`POST /auth/validate` → always `{valid, error?, claims?}` (CONTRACT §7.2). Only access
    tokens are valid: a refresh token answers `{valid: false}` (§21 R12)."""
    try:
        claims = tokens.decode(token, secret)
    except tokens.TokenError:
        return {"valid": False, "error": "Invalid token"}
    if claims.token_type != tokens.ACCESS:
        return {"valid": False, "error": "Invalid token"}
    if await revocations.is_revoked(claims.jti, claims.sid):
        return {"valid": False, "error": REVOKED}
    public = claims.public()
    return {
        "valid": True,
        "claims": public,
        "organization_id": claims.org_id,
        "api_key_id": claims.api_key_id,
        "queues": list(claims.queues),
        "expires_at": claims.exp,
    }
