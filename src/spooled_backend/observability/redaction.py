"""Secrets never reach the logs: a structlog processor and a stdlib logging filter.

Redacted wherever they appear in a log event (message, fields, nested dicts/lists, rendered
tracebacks): API keys (`sp_/sk_` live/test), JWTs, `Bearer` credentials, webhook tokens
(`whk_…`), credential query parameters (`?token=`, `?api_key=` on realtime routes, …), values of
fields whose name says they are secret (authorization, api_key, secret, password, …), and the
exact values of configured secrets (ADMIN_API_KEY, JWT_SECRET, SMTP_PASSWORD, …).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer)\s+[^\s,;\"']+"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*"), "eyJ" + REDACTED),
    (re.compile(r"\b(s[pk]_(?:live|test)_)[A-Za-z0-9_-]{4,}"), r"\1" + REDACTED),
    (re.compile(r"\b(whk_)[A-Za-z0-9_-]{4,}"), r"\1" + REDACTED),
    (re.compile(r"\b(whsec_)[A-Za-z0-9_-]{4,}"), r"\1" + REDACTED),
    (
        re.compile(
            r"(?i)([?&;](?:token|api_key|apikey|key|access_token|refresh_token|signup_token|"
            r"secret|password|admin_key)=)[^&\s\"']*"
        ),
        r"\1" + REDACTED,
    ),
]

# One cheap scan that every pattern above needs to match first: a text without any of these
# (most access-log paths, `/api/v1/jobs/<uuid>/complete`) skips the six substitutions.
_TRIGGER = re.compile(r"(?i)bearer|eyJ|s[pk]_(?:live|test)_|whk_|whsec_|[?&;][a-z_]*=")

SENSITIVE_KEYS = frozenset(
    {
        "authorization", "api_key", "apikey", "key", "raw_key", "token", "access_token",
        "refresh_token", "signup_token", "secret", "secrets", "webhook_secret", "signing_secret",
        "completion_webhook_secret", "password", "smtp_password", "admin_key", "x-admin-key",
        "x_admin_key", "x-api-key", "x_api_key", "x-webhook-token", "x_webhook_token",
        "webhook_token", "jwt", "jwt_secret", "cookie", "set-cookie", "stripe-signature",
    }
)

_known: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember configured secret values (≥ 8 chars) so their exact text is always redacted."""
    for value in values:
        if value and len(value) >= 8:
            _known.add(value)


PRE_REDACTED = "_redacted"


def redact_text(text: str) -> str:
    """Apply every pattern and known-secret replacement to one string."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _TRIGGER.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, depth: int = 0) -> Any:
    """Redact strings, and recurse into mappings and sequences (bounded depth)."""
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if depth > 6:
        return value
    if isinstance(value, (MutableMapping, dict)):
        return {
            k: (REDACTED if isinstance(k, str) and k.lower() in SENSITIVE_KEYS and v
                else redact_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, depth + 1) for v in value)
    if isinstance(value, bytes):
        return redact_text(value.decode("latin-1"))
    return value


def redact_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: put it after `format_exc_info` and before the renderer.

    An event logged with `_redacted=True` has redacted its own values (the access log: the
    path and query go through `redact_text`, the rest are numbers and our own ids) and skips
    the walk, which cost ~20 µs per request line."""
    if event_dict.pop(PRE_REDACTED, False):
        return event_dict
    for key in list(event_dict.keys()):
        value = event_dict[key]
        if key.lower() in SENSITIVE_KEYS and value and key != "event":
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """stdlib logging filter (uvicorn, asyncpg, …): redacts the formatted message in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is passed through untouched
            return True
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def redact_url(url: str) -> str:
    """`scheme://host:port/path` without user, password or query (for log lines and errors)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"
