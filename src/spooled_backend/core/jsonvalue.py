"""Strict JSON for user data stored in jsonb.

PostgreSQL's jsonb refuses `\\u0000` and lone UTF-16 surrogates, and JSON itself has no NaN or
Infinity (RFC 8259 §6). Python's json module accepts all of these (and numbers like `1e400`,
which it turns into `inf`), so user JSON goes through `loads_strict` and `check_storable`
before it can reach the database.

Nesting is capped at `MAX_DEPTH` levels (serde_json's default recursion limit, which the
original backend inherits): deeper documents are refused at parse time instead of blowing the
interpreter's recursion limit later, when the value is serialised for storage or a response.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from spooled_backend.core.errors import InvalidJson, ValidationFailed

MAX_DEPTH = 128


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 §6)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _invalid(message: str) -> InvalidJson:
    return InvalidJson(
        f"Request body is not valid JSON: {message}",
        details=[{"field": "body", "message": message[:200], "code": "invalid_json"}],
    )


def loads_strict(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text (UTF-8 when bytes) → value. CONTRACT §3.2: raises InvalidJson (400,
    detail code `invalid_json`) for malformed text, invalid UTF-8, NaN/Infinity, numbers that
    overflow a double (`1e400`) or have more than 4300 digits, and nesting deeper than
    `max_depth` objects/arrays (the outermost value counts as one level)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        text = text.removeprefix("\ufeff")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise _invalid(f"nesting deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise _invalid(str(exc)) from None
    if _depth_exceeds(value, max_depth):
        raise _invalid(f"nesting deeper than {max_depth} levels")
    return value


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def string_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store `value` as text/jsonb (None when it can)."""
    if "\x00" in value:
        return "contains the NUL character (\\u0000), which PostgreSQL cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


# The path of a node is kept as a linked tuple (parent, key) and only rendered on error.
_Path = tuple[Any, str] | None


def _render(path: _Path, root: str) -> str:
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return ".".join([root, *reversed(parts)]) if root else ".".join(reversed(parts)) or "body"


def find_unstorable(value: Any, field: str = "") -> tuple[str, str] | None:
    """First `(field path, problem)` in `value` that jsonb/text would refuse: NUL or a lone
    surrogate in a string or object key, or a non-finite float. Iterative (no recursion)."""
    stack: list[tuple[Any, _Path]] = [(value, None)]
    while stack:
        item, path = stack.pop()
        problem: str | None = None
        if isinstance(item, str):
            problem = string_problem(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (problem := string_problem(key)):
                    problem = f"key {problem}"
                    break
                stack.append((child, (path, str(key))))
        elif isinstance(item, list):
            stack.extend((child, (path, str(i))) for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            problem = "contains a non-finite number (NaN or Infinity)"
        if problem:
            return _render(path, field), problem
    return None


def check_storable(value: Any, field: str) -> None:
    """Raise ValidationFailed (400 VALIDATION_ERROR, detail code `invalid_string`) when `value`
    holds something jsonb would refuse (see `find_unstorable`)."""
    found = find_unstorable(value, field)
    if found is not None:
        where, problem = found
        raise ValidationFailed(where, f"{where} {problem}", "invalid_string")


def clean_text(value: str) -> str:
    """Failure text a worker reports, made storable instead of refused (CONTRACT §21 R15): NUL
    removed, lone surrogates (never valid in UTF-8) replaced by U+FFFD. Valid pairs were already
    joined by the JSON decoder, so any surrogate left is lone."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def dumps(value: Any) -> str:
    """Compact JSON text as stored (its length is the payload size of CONTRACT §12.2)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_texts(values: Iterable[Any]) -> list[str | None]:
    """JSON texts (None stays NULL) for a `$n::text[]` parameter cast to jsonb in SQL.

    A `jsonb[]` parameter cannot carry JSON arrays: asyncpg reads a list element as another
    array dimension, so a result `[1, "x"]` became two rows of the batch ack and tags
    `["a", "b"]` two jobs. Every array-of-JSON parameter goes through here instead."""
    return [None if v is None else dumps(v) for v in values]


def json_size(value: Any) -> int:
    """Serialized size in bytes (UTF-8)."""
    return len(dumps(value).encode("utf-8"))
