"""Who is calling: the authenticated organization, its key and the key's queue scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spooled_backend.core.errors import AccessDenied, NotFound


@dataclass(frozen=True)
class AuthContext:
    """Result of authentication (CONTRACT §4).

    `queues` is the key's allow-list; empty or containing `*` means unrestricted.
    """

    organization_id: str
    api_key_id: str
    queues: tuple[str, ...] = ()
    plan_tier: str = "free"
    custom_limits: dict[str, Any] | None = None
    rate_limit: int | None = None
    via_jwt: bool = False
    # `spooled_key_fingerprint` of the key row this context was built from (migration 0008);
    # the fast lane checks it in its first round trip (tenancy.begin_bound). None: no check.
    fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unrestricted(self) -> bool:
        return not self.queues or "*" in self.queues

    def can_access_queue(self, queue_name: str) -> bool:
        return self.unrestricted or queue_name in self.queues

    def require_queue(self, queue_name: str) -> None:
        """403 ACCESS_DENIED when the key is scoped and `queue_name` is outside its scope."""
        if not self.can_access_queue(queue_name):
            raise AccessDenied(f"API key is not allowed to access queue '{queue_name}'")

    def require_queue_visible(self, queue_name: str, what: str = "Resource") -> None:
        """404 for reads outside the scope (no existence leak, CONTRACT §3.2)."""
        if not self.can_access_queue(queue_name):
            raise NotFound(f"{what} not found")

    def require_unrestricted(self) -> None:
        """403 for actions only unrestricted keys may perform (CONTRACT §4.1)."""
        if not self.unrestricted:
            raise AccessDenied("This action requires an API key without queue restrictions")

    @property
    def scope_filter(self) -> list[str] | None:
        """Queue names for SQL `queue_name = ANY($n)` filters; None when unrestricted."""
        return None if self.unrestricted else list(self.queues)
