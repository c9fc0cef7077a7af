"""Exception handlers: every error leaves as the contract's JSON body (CONTRACT §3)."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from spooled_backend.core.errors import SpooledError
from spooled_backend.core.responses import json_response

log = structlog.get_logger(__name__)

STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "ACCESS_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}


async def spooled_error(request: Request, exc: Exception) -> object:
    assert isinstance(exc, SpooledError)
    return json_response(exc.body(), status=exc.status, headers=exc.headers)


async def http_error(request: Request, exc: Exception) -> object:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "INTERNAL_ERROR")
    if exc.status_code == 404:
        message = "No route matches this path"
    elif exc.status_code == 405:
        message = "Method not allowed"
    else:
        message = str(exc.detail)
    return json_response(
        {"code": code, "message": message}, status=exc.status_code, headers=dict(exc.headers or {})
    )


async def request_validation_error(request: Request, exc: Exception) -> object:
    """Query/path parameter errors (FastAPI's own validation) → 400 VALIDATION_ERROR."""
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        details.append({"field": ".".join(loc) or "request", "message": err.get("msg", ""), "code": err.get("type", "invalid")})
    first = details[0] if details else {"field": "request", "message": "invalid"}
    return json_response(
        {
            "error": "Validation failed",
            "code": "VALIDATION_ERROR",
            "message": f"{first['field']}: {first['message']}",
            "details": details,
        },
        status=400,
    )


async def unexpected_error(request: Request, exc: Exception) -> object:
    """A 5xx is a bug: log it with the request id, never leak internals (e.g. SQL)."""
    log.error(
        "unhandled error",
        path=request.url.path,
        method=request.method,
        request_id=getattr(request.state, "request_id", None),
        exc_info=exc,
    )
    return json_response({"code": "INTERNAL_ERROR", "message": "Internal server error"}, status=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SpooledError, spooled_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(Exception, unexpected_error)
