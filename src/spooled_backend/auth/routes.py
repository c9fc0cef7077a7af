"""REST routes for authentication (CONTRACT §6 #5–13, §7.2).

Public routes (login, refresh, validate, email, check-email, signup) ignore any Authorization
header: the SDK sends its key, or an expired access token to /auth/refresh (wire notes §1.9).
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from starlette.responses import Response

from spooled_backend.auth import email_login, sessions, tokens
from spooled_backend.auth.admin import admin_key_matches
from spooled_backend.auth.mailer import mailer_for
from spooled_backend.auth.schemas import (
    AccessToken,
    EmailCheck,
    EmailStarted,
    EmailVerified,
    Me,
    SignupCompleted,
    TokenPair,
    TokenValidation,
    EmailStart,
    EmailVerify,
    Login,
    Logout,
    Refresh,
    SignupComplete,
    Validate,
    email_param,
)
from spooled_backend.config import Settings
from spooled_backend.core.body import parse_body, parse_optional_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.errors import AccessDenied, AuthenticationFailed
from spooled_backend.core.openapi import JWT, NONE, doc
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.ratelimit import rules
from spooled_backend.ratelimit.middleware import STATE_KEY

router = APIRouter(prefix="/api/v1", tags=["auth"])


def _lifetimes(settings: Settings) -> tokens.Lifetimes:
    return tokens.Lifetimes.from_hours(settings.jwt_expiration_hours)


async def _limit_login(state: State, request: Request, raw_key: str) -> None:
    """5 login attempts per minute per submitted key (bucket: first 8 bytes of its SHA-256)."""
    if state.rate_limiter is None:
        return
    bucket = hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    decision = await state.rate_limiter.hit(rules.LOGIN_KEY, bucket)
    if not decision.allowed:
        err = decision.error("Too many login attempts for this key; retry later")
        err.extra["error"] = "rate_limit_exceeded"
        raise err
    current = getattr(request.state, STATE_KEY, None)
    request.state.rate_limit = rules.tightest([d for d in (current, decision) if d is not None])


@router.post("/auth/login", **doc(TokenPair, body=Login, errors=(401,), auth=NONE))
async def login(request: Request, state: State, conn: Conn) -> JSONBody:
    """API key → `{access_token, refresh_token, token_type: "Bearer", expires_in,
    refresh_expires_in}` (seconds). 400 key shorter than 10; 401 `Invalid credentials`;
    429 after 5 attempts per minute for the same key."""
    body = await parse_body(request, Login)
    await _limit_login(state, request, body.api_key)
    result = await sessions.login(
        conn, state.settings.effective_jwt_secret, _lifetimes(state.settings), state.key_cache,
        body.api_key,
    )
    return json_response(result)


@router.post("/auth/refresh", **doc(AccessToken, body=Refresh, errors=(401,), auth=NONE))
async def refresh(request: Request, state: State, conn: Conn) -> JSONBody:
    """Refresh token → `{access_token, token_type, expires_in}` (new `jti`, same `sid`).
    401 for anything but a live refresh token of a usable key."""
    body = await parse_body(request, Refresh)
    result = await sessions.refresh(
        conn, state.settings.effective_jwt_secret, _lifetimes(state.settings), state.revocations,
        body.refresh_token,
    )
    return json_response(result)


@router.post(
    "/auth/logout", status_code=204,
    **doc(None, body=Logout, body_required=False, errors=(503,), auth=JWT),
)
async def logout(request: Request, state: State, auth: Auth) -> Response:
    """Revoke the access token, its session and an optional `{refresh_token}` → 204.
    401 for API keys and bad tokens; 503 without Redis."""
    body = await parse_optional_body(request, Logout)
    await sessions.logout(
        state.settings.effective_jwt_secret, _lifetimes(state.settings), state.revocations, auth,
        body.refresh_token,
    )
    return empty_response(204)


@router.get("/auth/me", **doc(Me, auth=JWT))
async def me(conn: Conn, auth: Auth) -> JSONBody:
    """`{organization_id, api_key_id, queues, issued_at, expires_at, organization}`; access JWT
    only (API keys and refresh tokens → 401)."""
    return json_response(await sessions.me(conn, auth))


@router.post("/auth/validate", **doc(TokenValidation, body=Validate, auth=NONE))
async def validate(request: Request, state: State) -> JSONBody:
    """`{token}` → 200 `{valid, error?, claims?}` (never 401)."""
    body = await parse_body(request, Validate)
    result = await sessions.validate(
        state.settings.effective_jwt_secret, state.revocations, body.token
    )
    return json_response(result)


@router.post("/auth/email/start", **doc(EmailStarted, body=EmailStart, errors=(503,), auth=NONE))
async def email_start(request: Request, state: State, conn: Conn) -> JSONBody:
    """`{email}` → `{message, email_sent_to, email_to, expires_in}`. 429 after 5 codes/hour for
    the address; 503 when no email provider can send (production without SMTP)."""
    body = await parse_body(request, EmailStart)
    result = await email_login.start(
        conn, state.settings.effective_jwt_secret, mailer_for(state.settings), body.email
    )
    return json_response(result)


@router.post("/auth/email/verify", **doc(EmailVerified, body=EmailVerify, errors=(401,), auth=NONE))
async def email_verify(request: Request, state: State) -> JSONBody:
    """`{email, code}` → `{type: "login", …tokens}` or `{type: "signup", signup_token, email,
    expires_in}`; 401 `Invalid or expired code` / `Too many attempts`. Attempts are committed
    even when the answer is 401 (own transaction)."""
    body = await parse_body(request, EmailVerify)
    async with state.pool.acquire() as conn, conn.transaction():
        outcome = await email_login.verify(
            conn, state.settings.effective_jwt_secret, _lifetimes(state.settings), body.email,
            body.code,
        )
    if outcome.error is not None:
        raise AuthenticationFailed(outcome.error)
    return json_response(outcome.body)


@router.get("/auth/check-email", **doc(EmailCheck, errors=(400,), auth=NONE))
@router.get(
    "/auth/email/check", operation_id="check_email_alias",
    **doc(EmailCheck, errors=(400,), auth=NONE, description="Alias of `GET /auth/check-email` "
          "(older SDKs call it; CONTRACT §21 R6)."),
)
async def check_email(state: State, conn: Conn, email: str | None = None) -> JSONBody:
    """`?email=` → `{available, exists, signup_enabled, has_organizations}`; 400 bad email;
    429 over 10/min or 60/h per client IP."""
    return json_response(await email_login.check_email(conn, state.settings, email_param(email)))


@router.post(
    "/auth/signup/complete", status_code=201,
    **doc(SignupCompleted, body=SignupComplete, errors=(401, 403, 409), auth=NONE),
)
async def signup_complete(request: Request, state: State, conn: Conn) -> JSONBody:
    """`{signup_token, name, slug}` → 201 `{organization, api_key, access_token, refresh_token,
    token_type, expires_in}`. 403 when EMAIL_SIGNUP_ENABLED=false or registration is closed
    (without a matching X-Admin-Key) / invite-only; 401 bad token; 400 bad name/slug; 409 taken."""
    settings = state.settings
    if not settings.email_signup_enabled:
        raise AccessDenied("Email signup is disabled on this server")
    mode = settings.registration_mode
    if mode != "open" and not (
        mode == "closed" and admin_key_matches(settings, request.headers.get("x-admin-key"))
    ):
        raise AccessDenied("Registration is closed on this server")
    body = await parse_body(request, SignupComplete)
    result = await email_login.complete_signup(
        conn, settings, _lifetimes(settings), body.signup_token, body.name, body.slug
    )
    if result is None:
        raise AuthenticationFailed("Invalid or expired signup token")
    return json_response(result, status=201)
