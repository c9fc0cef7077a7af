"""Shared field rules (CONTRACT §7): queue names, ids, payload limits."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Strict

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
