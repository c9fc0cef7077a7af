"""Fast JSON responses: RFC 3339 UTC timestamps (`...Z`), no jsonable_encoder pass."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from starlette.responses import Response


def rfc3339(value: datetime) -> str:
    """`2026-09-26T12:00:00.123456Z` (UTC)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def encode(data: Any) -> bytes:
    return json.dumps(data, default=_default, separators=(",", ":"), ensure_ascii=False).encode()


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> JSONBody:
    return JSONBody(data, status_code=status, headers=headers)


def empty_response(status: int = 204) -> Response:
    return Response(status_code=status)
