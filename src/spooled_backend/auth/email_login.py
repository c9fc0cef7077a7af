"""Email login and signup (CONTRACT §7.2, §12.4 "Email codes per address").

Codes are 6 digits, single use, valid 10 minutes, stored only as an HMAC (keyed with the JWT
secret, so a database dump does not reveal them and 10^6 candidates cannot be tried offline).
Limits: 5 codes per address per hour; every guess spends one attempt of every live code of the
address (≤5 per code, atomic under a per-address advisory lock); ≤5 guesses per address per
10 minutes (failed guesses, table email_login_guesses). Signup tokens are rows with code `signup:<hmac>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from spooled_backend.auth import queries as q
from spooled_backend.auth import sessions, tokens
from spooled_backend.auth.mailer import Mailer
from spooled_backend.config import Settings
from spooled_backend.core.errors import AlreadyExists, RateLimited

CODE_TTL_SECS = 600
SIGNUP_TTL_SECS = 1800
MAX_CODES_PER_HOUR = 5
MAX_ATTEMPTS_PER_CODE = 5
MAX_GUESSES_PER_10_MIN = 5
INVALID_CODE = "Invalid or expired code"
TOO_MANY = "Too many attempts"


def digest(secret: str, purpose: str, email: str, value: str) -> str:
    """Hex HMAC-SHA256 of `purpose:email:value` keyed with the server secret."""
    msg = f"{purpose}:{email}:{value}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def code_hash(secret: str, email: str, code: str) -> str:
    return "h:" + digest(secret, "login-code", email, code)


def signup_hash(secret: str, token: str) -> str:
    return "signup:" + digest(secret, "signup-token", "", token)


def mask_email(email: str) -> str:
    """`jane.doe@example.com` → `j***@example.com` (never the whole local part)."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


async def start(
    conn: asyncpg.Connection, secret: str, mailer: Mailer, email: str
) -> dict[str, Any]:
    """Issue and send a login code (`POST /auth/email/start`) → `{message, email_sent_to,
    email_to, expires_in}`. Sent whether or not an account exists (signup starts here).

    Raises RateLimited (429, Retry-After) after 5 codes in an hour for the address, and
    ServiceUnavailable (503) when the mail cannot be sent (the caller's transaction then rolls
    the code back).
    """
    await conn.execute(q.LOCK_EMAIL, email)
    if await conn.fetchval(q.CODES_SENT_LAST_HOUR, email) >= MAX_CODES_PER_HOUR:
        oldest: datetime = await conn.fetchval(q.OLDEST_CODE_LAST_HOUR, email)
        wait = (oldest + timedelta(hours=1) - datetime.now(UTC)).total_seconds()
        retry = max(1, math.ceil(wait))
        raise RateLimited(
            "Too many login codes requested for this address; try again later",
            extra={"error": "rate_limit_exceeded", "retry_after_secs": retry},
            headers={"Retry-After": str(retry)},
        )
    org_id = await conn.fetchval(q.LIVE_ORG_BY_EMAIL, email)
    code = new_code()
    await conn.fetchval(q.INSERT_CODE, email, code_hash(secret, email, code), org_id, CODE_TTL_SECS)
    await mailer.send(
        email,
        "Your Spooled login code",
        f"Your Spooled login code is {code}. It expires in 10 minutes.\n"
        "If you did not ask for it, ignore this email.",
    )
    masked = mask_email(email)
    return {
        "message": "Login code sent to your email",
        "email_sent_to": masked,
        "email_to": masked,
        "expires_in": CODE_TTL_SECS,
    }


@dataclass(frozen=True)
class VerifyOutcome:
    """Either `body` (200) or `error` (401 message). Attempts are recorded in both cases, so the
    caller commits before turning an error into a response."""

    body: dict[str, Any] | None = None
    error: str | None = None


async def verify(
    conn: asyncpg.Connection,
    secret: str,
    lifetimes: tokens.Lifetimes,
    email: str,
    code: str,
) -> VerifyOutcome:
    """Check a code (`POST /auth/email/verify`). Success →
    `{type: "login", access_token, refresh_token, token_type, expires_in, refresh_expires_in}`
    for the address of a live organization (tokens bound to its oldest usable key, with an
    `email` claim), else `{type: "signup", signup_token, email, expires_in}`."""
    await conn.execute(q.LOCK_EMAIL, email)
    await conn.execute(q.PRUNE_GUESSES, email)
    if await conn.fetchval(q.GUESSES_LAST_10_MIN, email) >= MAX_GUESSES_PER_10_MIN:
        return VerifyOutcome(error=TOO_MANY)
    wanted = code_hash(secret, email, code)
    live = await conn.fetch(q.SPEND_ATTEMPT, email)
    match = next(
        (r for r in live
         if r["attempts"] <= MAX_ATTEMPTS_PER_CODE and hmac.compare_digest(r["code"], wanted)),
        None,
    )
    if match is None:
        await conn.execute(q.RECORD_GUESS, email)
        exhausted = bool(live) and all(r["attempts"] > MAX_ATTEMPTS_PER_CODE for r in live)
        return VerifyOutcome(error=TOO_MANY if exhausted else INVALID_CODE)
    if await conn.fetchval(q.MARK_USED, match["id"]) is None:
        return VerifyOutcome(error=INVALID_CODE)
    org_id = await conn.fetchval(q.LIVE_ORG_BY_EMAIL, email)
    if org_id is not None:
        key = await conn.fetchrow(q.LOGIN_KEY_FOR_ORG, org_id)
        if key is None:
            return VerifyOutcome(error="This organization has no active API key")
        body = await sessions.issue_for_key(
            secret, lifetimes, org_id, key["id"], list(key["queues"] or ()), email=email
        )
        return VerifyOutcome(body={"type": "login", **body})
    token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    await conn.fetchval(q.INSERT_CODE, email, signup_hash(secret, token), None, SIGNUP_TTL_SECS)
    return VerifyOutcome(
        body={"type": "signup", "signup_token": token, "email": email, "expires_in": SIGNUP_TTL_SECS}
    )


async def check_email(conn: asyncpg.Connection, settings: Settings, email: str) -> dict[str, Any]:
    """`GET /auth/check-email` → `{available, exists, signup_enabled, has_organizations}`."""
    exists = bool(await conn.fetchval(q.EMAIL_EXISTS, email))
    return {
        "available": not exists,
        "exists": exists,
        "signup_enabled": settings.email_signup_enabled,
        "has_organizations": exists,
    }


async def complete_signup(
    conn: asyncpg.Connection,
    settings: Settings,
    lifetimes: tokens.Lifetimes,
    signup_token: str,
    name: str,
    slug: str,
) -> dict[str, Any] | None:
    """Create the organization for a verified address (`POST /auth/signup/complete`).

    Returns `{organization: {id, name, slug, billing_email}, api_key, access_token,
    refresh_token, token_type, expires_in, refresh_expires_in}`, or None for an unknown, used or
    expired token (the route answers 401). Raises ValidationFailed (400) for a bad name/slug and
    AlreadyExists (409) for a taken email or slug; the token is consumed only on success (the
    caller's transaction rolls everything back on error).
    """
    from spooled_backend.organizations.service import create_organization

    secret = settings.effective_jwt_secret
    row = await conn.fetchrow(q.FIND_SIGNUP_TOKEN, signup_hash(secret, signup_token))
    if row is None:
        return None
    email = row["email"]
    if await conn.fetchval(q.EMAIL_EXISTS, email):
        raise AlreadyExists("An organization already uses this email address")
    created = await create_organization(conn, settings, name=name, slug=slug, billing_email=email)
    await conn.fetchval(q.MARK_USED, row["id"])
    org = created["organization"]
    key = created["api_key"]
    body = await sessions.issue_for_key(
        secret, lifetimes, org["id"], key["id"], ["*"], email=email
    )
    return {
        "organization": {k: org[k] for k in ("id", "name", "slug", "billing_email")},
        "api_key": key["key"],
        **body,
    }
