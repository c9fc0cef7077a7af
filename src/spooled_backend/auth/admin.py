"""`X-Admin-Key` check (CONTRACT §4.3): SHA-256 both sides, constant-time compare."""

from __future__ import annotations

import hashlib
import hmac

from spooled_backend.config import Settings
from spooled_backend.core.errors import Unauthorized


def admin_key_matches(settings: Settings, supplied: str | None) -> bool:
    if not settings.admin_api_key or not supplied:
        return False
    expected = hashlib.sha256(settings.admin_api_key.encode()).digest()
    given = hashlib.sha256(supplied.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(expected, given)


def require_admin_key(settings: Settings, supplied: str | None) -> None:
    """Raise 401 with the admin error codes of CONTRACT §3.3."""
    if not settings.admin_api_key:
        raise Unauthorized(
            "Admin API is not configured", code="ADMIN_NOT_CONFIGURED",
            extra={"error": "admin_not_configured"},
        )
    if not supplied:
        raise Unauthorized(
            "Missing X-Admin-Key header", code="MISSING_ADMIN_KEY", extra={"error": "missing_admin_key"}
        )
    if not admin_key_matches(settings, supplied):
        raise Unauthorized(
            "Invalid admin key", code="INVALID_ADMIN_KEY", extra={"error": "invalid_admin_key"}
        )
