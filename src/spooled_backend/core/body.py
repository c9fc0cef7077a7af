"""Request-body parsing with the contract's rules (CONTRACT §1 content type, §3.2 codes).

FastAPI's own body handling accepts NaN and maps errors to its own shape; we parse ourselves:
required body + empty → 400 INVALID_JSON; JSON body with a non-JSON content type → 415;
malformed → 400 INVALID_JSON; missing field / wrong type → 422; rule failure → 400.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from spooled_backend.core.errors import InvalidJson, UnsupportedMediaType, ValidationFailed
from spooled_backend.core.jsonvalue import loads_strict

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


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """Read and strictly parse the body. Returns None for an empty optional body."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return None
        raise InvalidJson(
            "Request body is empty",
            details=[{"field": "body", "message": "empty body", "code": "empty_body"}],
        )
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType()
    return loads_strict(raw)


async def parse_body(request: Request, model: type[M]) -> M:
    """Required JSON object body validated against `model`."""
    return parse_model(model, await read_json(request))


async def parse_optional_body(request: Request, model: type[M]) -> M:
    """Optional body (CONTRACT §1: empty → defaults)."""
    data = await read_json(request, optional=True)
    return parse_model(model, {} if data is None else data)
