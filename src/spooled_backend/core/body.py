"""Request-body parsing with the contract's rules (CONTRACT §1 content type, §3.2 codes).

FastAPI's own body handling accepts NaN and maps errors to its own shape; we parse ourselves:
body over 5 MiB → 413 PAYLOAD_TOO_LARGE (read no further); required body + empty → 400
INVALID_JSON (`empty_body`); JSON body with a non-JSON content type → 415; malformed, NaN,
out-of-range numbers, nesting > 128 → 400 INVALID_JSON (`invalid_json`); a string anywhere in the
body that PostgreSQL cannot store (NUL, lone surrogate) → 400 VALIDATION_ERROR (`invalid_string`);
missing field / wrong type → 422; rule failure → 400.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from spooled_backend.core.errors import (
    InvalidJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from spooled_backend.core.jsonvalue import check_storable, clean_text, loads_strict

MAX_BODY_BYTES = 5 * 1024 * 1024  # CONTRACT §3.2: the 5 MiB body cap

M = TypeVar("M", bound=BaseModel)

# pydantic error types that mean "the body does not have the right shape" (422 in the contract)
SHAPE_ERRORS = {
    "missing": "missing_field",
    "model_type": "invalid_type",
    "dict_type": "invalid_type",
    "list_type": "invalid_type",
    "string_type": "invalid_type",
    "int_type": "invalid_type",
    "int_parsing": "invalid_type",
    "int_from_float": "invalid_type",
    "float_type": "invalid_type",
    "float_parsing": "invalid_type",
    "bool_type": "invalid_type",
    "bool_parsing": "invalid_type",
    "datetime_type": "invalid_type",
    "date_type": "invalid_type",
    "uuid_type": "invalid_type",
    "url_type": "invalid_type",
    "tuple_type": "invalid_type",
    "set_type": "invalid_type",
    "bytes_type": "invalid_type",
}


def validation_error(exc: ValidationError) -> ValidationFailed:
    """Map pydantic errors to the contract's body: 422 for shape errors, else 400."""
    errors: list[dict[str, str]] = []
    status = 400
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        kind = err["type"]
        code = SHAPE_ERRORS.get(kind)
        if code:
            status = 422
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        errors.append({"field": field, "message": message, "code": code or kind})
    return ValidationFailed.many(errors, status=status)


def parse_model(model: type[M], data: Any) -> M:
    """Validate already-parsed JSON against `model`; raises ValidationFailed."""
    if not isinstance(data, dict):
        raise ValidationFailed("body", "Request body must be a JSON object", "invalid_type", 422)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _too_large(size: int | None = None) -> PayloadTooLarge:
    extra: dict[str, Any] = {"limit": MAX_BODY_BYTES}
    if size is not None:
        extra["current"] = size
    return PayloadTooLarge(f"Request body exceeds the limit of {MAX_BODY_BYTES} bytes", extra=extra)


async def _read_capped(request: Request) -> bytes:
    """The raw body, refusing (413) anything over MAX_BODY_BYTES without buffering all of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    # Kept where Starlette's Request.stream() looks first, so a route run twice (the fast lane
    # re-runs it after a stale cached key, core/fastlane.py) reads the same body again.
    request._body = body  # noqa: SLF001
    return body


async def read_raw(request: Request) -> bytes:
    """The raw body bytes (signature checks need them exactly), capped like every body."""
    return await _read_capped(request)


async def _read(
    request: Request, *, optional: bool, clean: tuple[str, ...] = ()
) -> tuple[bool, Any]:
    """(present, value): present is False only for an empty optional body. Top-level string
    fields named in `clean` are cleaned (`clean_text`, CONTRACT §21 R15) before the storable
    check that refuses NUL / lone surrogates everywhere else."""
    raw = await _read_capped(request)
    if not raw.strip():
        if optional:
            return False, None
        raise InvalidJson(
            "Request body is empty",
            details=[{"field": "body", "message": "empty body", "code": "empty_body"}],
        )
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType()
    value = loads_strict(raw)
    if clean and isinstance(value, dict):
        for name in clean:
            if isinstance(value.get(name), str):
                value[name] = clean_text(value[name])
    check_storable(value, "")
    return True, value


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """Read and strictly parse the body (rules in the module docstring).
    Returns None for an empty optional body."""
    return (await _read(request, optional=optional))[1]


async def parse_body(request: Request, model: type[M], *, clean: tuple[str, ...] = ()) -> M:
    """Required JSON object body validated against `model`; `clean` names worker-reported
    failure-text fields that are cleaned rather than refused (CONTRACT §21 R15)."""
    return parse_model(model, (await _read(request, optional=False, clean=clean))[1])


async def parse_optional_body(request: Request, model: type[M]) -> M:
    """Optional body (CONTRACT §1: empty → defaults); a present body must be an object."""
    present, data = await _read(request, optional=True)
    return parse_model(model, data if present else {})
