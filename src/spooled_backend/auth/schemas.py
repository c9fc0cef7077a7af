"""Wire models for auth requests (CONTRACT §7.2). Responses are plain dicts (see services)."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from spooled_backend.core.errors import ValidationFailed


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
