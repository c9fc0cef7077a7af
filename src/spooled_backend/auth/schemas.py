"""Wire models for auth requests (CONTRACT §7.2). Responses are plain dicts (see services)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from spooled_backend.core.errors import ValidationFailed
from spooled_backend.core.openapi import Out


def normalise_email(value: str) -> str:
    """Trimmed, lower-cased, syntactically valid address (no DNS lookup)."""
    value = value.strip().lower()
    if len(value) > 254:
        raise ValueError("email must be at most 254 characters")
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("must be a valid email address") from None
    return value


def email_param(value: str | None) -> str:
    """A query-string email (`GET /auth/check-email`) → normalised, else 400."""
    if not value:
        raise ValidationFailed("email", "email is required", "required")
    try:
        return normalise_email(value)
    except ValueError as exc:
        raise ValidationFailed("email", str(exc), "email") from None


Email = Annotated[str, AfterValidator(normalise_email)]
# Long values are accepted here and refused by the cheap key check (401, no bcrypt).
Credential = Annotated[str, Field(min_length=10)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Login(_Body):
    api_key: Credential


class Refresh(_Body):
    refresh_token: Credential


class Logout(_Body):
    refresh_token: str | None = None


class Validate(_Body):
    token: str


class EmailStart(_Body):
    email: Email


class EmailVerify(_Body):
    email: Email
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]


class SignupComplete(_Body):
    signup_token: Annotated[str, Field(min_length=10, max_length=200)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    slug: Annotated[str, Field(min_length=1, max_length=200)]


# --- response bodies (documentation: routes answer plain dicts of these shapes) ---


class TokenPair(Out):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")
    refresh_expires_in: int = Field(description="seconds")


class AccessToken(Out):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")


class MeOrganization(Out):
    id: str
    name: str
    slug: str
    plan_tier: str
    billing_email: str | None = None


class Me(Out):
    organization_id: str
    api_key_id: str
    queues: list[str]
    issued_at: datetime
    expires_at: datetime
    organization: MeOrganization | None


class TokenClaims(Out):
    sub: str
    org_id: str
    api_key_id: str
    iat: int
    exp: int
    nbf: int
    jti: str
    queues: list[str]
    token_type: str
    sid: str | None = None


class TokenValidation(Out):
    valid: bool
    error: str | None = None
    claims: TokenClaims | None = None


class EmailStarted(Out):
    message: str
    email_sent_to: str
    email_to: str | None = None
    expires_in: int | None = None


class EmailVerified(Out):
    """`type: "login"` carries the token pair; `type: "signup"` a `signup_token`."""

    type: Literal["login", "signup"]
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    refresh_expires_in: int | None = None
    signup_token: str | None = None
    email: str | None = None


class EmailCheck(Out):
    available: bool
    exists: bool
    signup_enabled: bool
    has_organizations: bool | None = None


class SignupOrganization(Out):
    id: str
    name: str
    slug: str
    billing_email: str | None = None


class SignupCompleted(Out):
    organization: SignupOrganization
    api_key: str
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int

