"""The one error hierarchy (STYLE.md). Each error knows its HTTP status, contract code and gRPC code.

Bodies follow CONTRACT §3: `{"code", "message", "details"?, ...extra}`.
"""

from __future__ import annotations

from typing import Any

import grpc


class SpooledError(Exception):
    """Base error: `status` (HTTP), `code` (CONTRACT §3.2), `grpc_status`, optional extras."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    grpc_status: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_message: str = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details = details
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The JSON error body of CONTRACT §3.1."""
        out: dict[str, Any] = dict(self.extra)
        out["code"] = self.code
        out["message"] = self.message
        if self.details is not None:
            out["details"] = self.details
        return out


class BadRequest(SpooledError):
    status, code, grpc_status = 400, "BAD_REQUEST", grpc.StatusCode.INVALID_ARGUMENT
    default_message = "Bad request"


class ValidationFailed(SpooledError):
    """400/422 with a details array of `{field, message, code}` (CONTRACT §3.3)."""

    status, code, grpc_status = 400, "VALIDATION_ERROR", grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str, rule: str = "invalid", status: int = 400) -> None:
        super().__init__(
            f"{field}: {message}",
            details=[{"field": field, "message": message, "code": rule}],
            extra={"error": "Validation failed"},
        )
        self.status = status

    @classmethod
    def many(cls, errors: list[dict[str, str]], status: int = 400) -> ValidationFailed:
        first = errors[0]
        err = cls(first["field"], first["message"], first["code"], status)
        err.details = errors
        return err


class InvalidJson(SpooledError):
    status, code, grpc_status = 400, "INVALID_JSON", grpc.StatusCode.INVALID_ARGUMENT
    default_message = "Request body is not valid JSON"


class Unauthorized(SpooledError):
    status, code, grpc_status = 401, "UNAUTHORIZED", grpc.StatusCode.UNAUTHENTICATED
    default_message = "Unauthorized"


class AuthenticationFailed(SpooledError):
    status, code, grpc_status = 401, "AUTHENTICATION_FAILED", grpc.StatusCode.UNAUTHENTICATED
    default_message = "Authentication failed"


class AccessDenied(SpooledError):
    status, code, grpc_status = 403, "ACCESS_DENIED", grpc.StatusCode.PERMISSION_DENIED
    default_message = "Access denied"


class FeatureDisabled(SpooledError):
    status, code, grpc_status = 403, "FEATURE_DISABLED", grpc.StatusCode.PERMISSION_DENIED


class NotFound(SpooledError):
    status, code, grpc_status = 404, "NOT_FOUND", grpc.StatusCode.NOT_FOUND
    default_message = "Not found"


class Conflict(SpooledError):
    status, code, grpc_status = 409, "CONFLICT", grpc.StatusCode.FAILED_PRECONDITION
    default_message = "Conflict"


class AlreadyExists(Conflict):
    grpc_status = grpc.StatusCode.ALREADY_EXISTS


class LeaseExpired(SpooledError):
    """409 `LEASE_EXPIRED`: lease timed out or `lease_id` mismatch (CONTRACT §8.4)."""

    status, code, grpc_status = 409, "LEASE_EXPIRED", grpc.StatusCode.FAILED_PRECONDITION
    default_message = "Lease expired"


class PayloadTooLarge(SpooledError):
    status, code, grpc_status = 413, "PAYLOAD_TOO_LARGE", grpc.StatusCode.INVALID_ARGUMENT
    default_message = "Payload too large"


class UnsupportedMediaType(SpooledError):
    status, code, grpc_status = 415, "UNSUPPORTED_MEDIA_TYPE", grpc.StatusCode.INVALID_ARGUMENT
    default_message = "Content-Type must be application/json"


class QuotaExceeded(SpooledError):
    """429 `QUOTA_EXCEEDED`, never with Retry-After (CONTRACT §3.3)."""

    status, code, grpc_status = 429, "QUOTA_EXCEEDED", grpc.StatusCode.RESOURCE_EXHAUSTED


class RateLimited(SpooledError):
    status, code, grpc_status = 429, "RATE_LIMIT_EXCEEDED", grpc.StatusCode.RESOURCE_EXHAUSTED
    default_message = "Rate limit exceeded"


class ServiceUnavailable(SpooledError):
    status, code, grpc_status = 503, "SERVICE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE
    default_message = "Service unavailable"


class InternalError(SpooledError):
    pass
