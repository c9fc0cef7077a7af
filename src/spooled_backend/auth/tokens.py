"""JWT rules (CONTRACT §4.2): HS256 only, access/refresh pairs sharing a login-session id.

Pure functions over PyJWT: no database, no Redis, no web framework. Times are Unix seconds.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"
# A Bearer value longer than this is refused before any decoding (headers are cheap to inflate).
MAX_TOKEN_CHARS = 4096
REQUIRED_CLAIMS = ("sub", "org_id", "api_key_id", "iat", "exp", "nbf", "jti", "token_type")


class TokenError(Exception):
    """The token cannot be used: malformed, bad signature, expired, not yet valid, wrong type."""


@dataclass(frozen=True)
class Claims:
    """Decoded, validated claims. `queues` is the key-scope snapshot taken at issue time."""

    org_id: str
    api_key_id: str
    iat: int
    exp: int
    nbf: int
    jti: str
    token_type: str
    queues: tuple[str, ...] = ()
    sid: str | None = None
    email: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def remaining_seconds(self, now: float | None = None) -> int:
        """Seconds until `exp` (≥ 0)."""
        return max(0, int(self.exp - (time.time() if now is None else now)))

    def public(self) -> dict[str, Any]:
        """The claim set as returned by `POST /auth/validate` (CONTRACT §7.2)."""
        out: dict[str, Any] = {
            "sub": self.org_id,
            "org_id": self.org_id,
            "api_key_id": self.api_key_id,
            "iat": self.iat,
            "exp": self.exp,
            "nbf": self.nbf,
            "jti": self.jti,
            "queues": list(self.queues),
            "token_type": self.token_type,
        }
        if self.sid is not None:
            out["sid"] = self.sid
        if self.email is not None:
            out["email"] = self.email
        return out


@dataclass(frozen=True)
class Lifetimes:
    """Access lifetime = JWT_EXPIRATION_HOURS; refresh lifetime = 24 × that (CONTRACT §4.2)."""

    access_seconds: int
    refresh_seconds: int

    @classmethod
    def from_hours(cls, hours: int) -> Lifetimes:
        return cls(access_seconds=hours * 3600, refresh_seconds=hours * 3600 * 24)


def looks_like_jwt(value: str) -> bool:
    """CONTRACT §4.2 detection rule: a Bearer value starting with `eyJ` is a JWT."""
    return value.startswith("eyJ")


def _claims(
    *,
    org_id: str,
    api_key_id: str,
    queues: list[str] | tuple[str, ...],
    token_type: str,
    sid: str,
    lifetime_seconds: int,
    email: str | None,
    now: int,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "sub": org_id,
        "org_id": org_id,
        "api_key_id": api_key_id,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
        "jti": str(uuid.uuid4()),
        "queues": list(queues),
        "token_type": token_type,
        "sid": sid,
    }
    if email is not None:
        payload["email"] = email
    return payload


def issue_access(
    secret: str,
    lifetimes: Lifetimes,
    *,
    org_id: str,
    api_key_id: str,
    queues: list[str] | tuple[str, ...],
    sid: str,
    email: str | None = None,
    now: int | None = None,
) -> str:
    """A signed access token with a fresh `jti` in session `sid`."""
    payload = _claims(
        org_id=org_id, api_key_id=api_key_id, queues=queues, token_type=ACCESS, sid=sid,
        lifetime_seconds=lifetimes.access_seconds, email=email,
        now=int(time.time()) if now is None else now,
    )
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def issue_pair(
    secret: str,
    lifetimes: Lifetimes,
    *,
    org_id: str,
    api_key_id: str,
    queues: list[str] | tuple[str, ...],
    email: str | None = None,
    now: int | None = None,
) -> tuple[str, str, str]:
    """(access, refresh, sid): a new login session (CONTRACT §7.2 `/auth/login`)."""
    sid = str(uuid.uuid4())
    issued = int(time.time()) if now is None else now
    common: dict[str, Any] = {
        "org_id": org_id, "api_key_id": api_key_id, "queues": queues, "sid": sid, "email": email,
        "now": issued,
    }
    access = jwt.encode(
        _claims(token_type=ACCESS, lifetime_seconds=lifetimes.access_seconds, **common),
        secret, algorithm=ALGORITHM,
    )
    refresh = jwt.encode(
        _claims(token_type=REFRESH, lifetime_seconds=lifetimes.refresh_seconds, **common),
        secret, algorithm=ALGORITHM,
    )
    return access, refresh, sid


def decode(token: str, secret: str, *, expected_type: str | None = None) -> Claims:
    """Verify signature (HS256 only), `exp`, `nbf`, required claims and, when given, the type.

    Raises TokenError for anything else: `alg: none`, other algorithms, tampered or malformed
    tokens, oversized or non-ASCII values, expired or not-yet-valid tokens, a refresh token
    where an access token is required (and the reverse).
    """
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenError("unsupported algorithm")
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False, "verify_iss": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("token not yet valid") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid token") from exc
    claims = _validated(payload)
    if expected_type is not None and claims.token_type != expected_type:
        raise TokenError(f"not an {expected_type} token" if expected_type == ACCESS
                         else f"not a {expected_type} token")
    return claims


def _validated(payload: dict[str, Any]) -> Claims:
    """Shape checks PyJWT does not do: string ids, integer times, a list of string queues."""
    strings = ("org_id", "api_key_id", "jti", "token_type", "sub")
    if not all(isinstance(payload.get(k), str) and payload[k] for k in strings):
        raise TokenError("invalid claims")
    if payload["sub"] != payload["org_id"]:
        raise TokenError("invalid claims")
    if payload["token_type"] not in (ACCESS, REFRESH):
        raise TokenError("invalid token type")
    times = ("iat", "exp", "nbf")
    if not all(isinstance(payload[k], int) and not isinstance(payload[k], bool) for k in times):
        raise TokenError("invalid claims")
    queues = payload.get("queues", [])
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise TokenError("invalid claims")
    sid = payload.get("sid")
    email = payload.get("email")
    if (sid is not None and not isinstance(sid, str)) or (
        email is not None and not isinstance(email, str)
    ):
        raise TokenError("invalid claims")
    return Claims(
        org_id=payload["org_id"],
        api_key_id=payload["api_key_id"],
        iat=payload["iat"],
        exp=payload["exp"],
        nbf=payload["nbf"],
        jti=payload["jti"],
        token_type=payload["token_type"],
        queues=tuple(queues),
        sid=sid,
        email=email,
        raw=payload,
    )
