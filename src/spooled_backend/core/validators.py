"""Shared field rules (CONTRACT §7): queue names, ids, payload limits."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    model_validator,
)

from spooled_backend.core.errors import NotFound, ValidationFailed

StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]

QUEUE_NAME_MAX = 100


def check_queue_name(value: str, max_len: int = QUEUE_NAME_MAX) -> str:
    """1..max_len chars of `[A-Za-z0-9._-]` (Unicode letters/digits accepted), no leading `.`/`-`."""
    if not 1 <= len(value) <= max_len:
        raise ValueError(f"queue_name must be 1-{max_len} characters")
    if value[0] in ".-":
        raise ValueError("queue_name must not start with '.' or '-'")
    for ch in value:
        if not (ch.isalnum() or ch in "._-"):
            raise ValueError("queue_name may contain only letters, digits, '.', '_' and '-'")
    return value


QueueName = Annotated[str, AfterValidator(check_queue_name)]


def valid_queue_name(value: str, field: str = "queue_name") -> str:
    """Path/query variant: raises ValidationFailed (400)."""
    try:
        return check_queue_name(value)
    except ValueError as exc:
        raise ValidationFailed(field, str(exc), "queue_name") from None


def parse_uuid_id(value: str, what: str = "Job") -> str:
    """Ids are UUID text; anything else cannot exist → 404 (never reaches SQL as garbage)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError):
        raise NotFound(f"{what} not found") from None


TAG_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
WORKER_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def require_text(value: Any, field: str, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        raise ValidationFailed(field, f"must be {min_len}-{max_len} characters", "length")
    return value


def to_utc(value: datetime) -> datetime:
    """An aware datetime converted to UTC; ValueError when that leaves years 1..9999
    (e.g. `0001-01-01T00:00:00+14:00`), which asyncpg could not encode."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range") from None


RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
RFC3339_HINT = "must be an RFC 3339 timestamp with an offset, e.g. 2026-01-01T00:00:00Z"


def rfc3339_only(value: Any) -> Any:
    """Only RFC 3339 strings with an offset (CONTRACT §21 R14): a JSON number, a digits-only
    string or a naive timestamp is a 400, never read as a Unix epoch or guessed as UTC."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number or (isinstance(value, str) and not RFC3339_RE.match(value)):
        raise ValueError(RFC3339_HINT)
    return value  # a datetime passes; other JSON types are pydantic's 422 invalid_type


# Request timestamps: RFC 3339 with an offset (naive values are refused on purpose), in UTC.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(rfc3339_only), AfterValidator(to_utc)]

_BLOCKED_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")
_BLOCKED_HOSTS = frozenset({"localhost", "metadata", "localdomain"})
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def _ip_problem(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if not addr.is_global or addr.is_multicast:
        return "must not point to a private, loopback, link-local or reserved address"
    return None


def webhook_url_problem(url: str) -> str | None:
    """Why `url` may not receive webhooks (None when acceptable). CONTRACT §7.6/§10.4: https,
    a host, and no private/loopback/link-local/metadata targets. IP literals are checked here,
    including integer/hex/short forms (`2130706433`, `0x7f.1`) that resolvers accept; names are
    checked against local suffixes. The sender must still re-check resolved addresses."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a malformed port
    except ValueError:
        return "must be a valid URL"
    if parts.scheme.lower() != "https":
        return "must be an https:// URL"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "must include a host"
    try:
        return _ip_problem(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if all(_NUMERIC_LABEL.match(label) for label in labels):
        return "must not use a numeric host that is not a plain public IP address"
    if host in _BLOCKED_HOSTS or host.endswith(_BLOCKED_HOST_SUFFIXES):
        return "must not point to a local or internal host"
    if any(ch.isspace() for ch in url):
        return "must be a valid URL"
    return None


def _check_webhook_url(value: str) -> str:
    if (problem := webhook_url_problem(value)) is not None:
        raise ValueError(problem)
    return value


WebhookUrl = Annotated[str, AfterValidator(_check_webhook_url)]


def _drop_null_defaults(cls: Any, data: Any) -> Any:
    if isinstance(data, dict):
        for name, field in cls.model_fields.items():
            if name in data and data[name] is None and not field.is_required() \
                    and field.default is not None:
                data = {k: v for k, v in data.items() if k != name}
    return data


def _document_null(schema: dict[str, Any], cls: Any) -> None:
    for name, field in cls.model_fields.items():
        prop = schema.get("properties", {}).get(name)
        if prop is None or field.is_required() or field.default is None or "anyOf" in prop:
            continue
        default = prop.pop("default", None)
        title = prop.pop("title", None)
        schema["properties"][name] = {"anyOf": [prop, {"type": "null"}], "default": default,
                                      **({"title": title} if title else {})}


class NullMeansDefault(BaseModel):
    """Request bodies where an explicit `null` means "use the default" for every optional field
    with a default (CONTRACT §21 R13: `priority: null` is 0, like `max_retries: null`).
    Required fields still refuse null; the JSON schema shows those fields as nullable."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_document_null)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        return _drop_null_defaults(cls, data)
