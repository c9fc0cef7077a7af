"""Strict JSON for user data stored in jsonb.

PostgreSQL's jsonb refuses `\\u0000` and lone UTF-16 surrogates, and JSON itself has no NaN or
Infinity (RFC 8259 §6). Python's json module accepts all of these, so user JSON goes through
`loads_strict` and `check_storable` before it can reach the database.
"""

from __future__ import annotations

import json
from typing import Any

from spooled_backend.core.errors import InvalidJson, ValidationFailed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 §6)")


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON text; raises InvalidJson (400, CONTRACT §3.2) on malformed input, NaN or Infinity."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(
            f"Request body is not valid JSON: {exc}",
            details=[{"field": "body", "message": str(exc)[:200], "code": "invalid_json"}],
        ) from None


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "contains the NUL character (\\u0000), which PostgreSQL cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def check_storable(value: Any, field: str) -> None:
    """Raise ValidationFailed (400) when `value` holds a string jsonb would refuse.

    Walks iteratively (no recursion limit); checks object keys and string values.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = _bad_string(item)
        elif isinstance(item, dict):
            problem = next((p for k in item if (p := _bad_string(k))), None)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            problem = None
        elif isinstance(item, float) and item != item:
            problem = "contains NaN"
        else:
            problem = None
        if problem:
            raise ValidationFailed(field, f"{field} {problem}", "invalid_string")


def dumps(value: Any) -> str:
    """Compact JSON text as stored (its length is the payload size of CONTRACT §12.2)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_size(value: Any) -> int:
    """Serialized size in bytes (UTF-8)."""
    return len(dumps(value).encode("utf-8"))
