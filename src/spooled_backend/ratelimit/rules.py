"""Which limits apply (CONTRACT §12.4) and how a decision is put on the wire (§2, §3.3).

Two kinds of rule:
* `bucket`: a token bucket of `limit` tokens refilled at `limit / period` per second (GCRA) —
  the organization bucket (plan rps / burst: limit = burst, period = burst / rps seconds) and
  the public per-IP bucket;
* `window`: a fixed window of `limit` requests per `period` seconds — API-key overrides (per
  minute), admin per IP, login per key, check-email / check-slug per IP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from spooled_backend.core.errors import RateLimited

Kind = Literal["bucket", "window"]


@dataclass(frozen=True)
class Rule:
    """One limit: `name` namespaces the storage key, `scope` goes to `X-RateLimit-Scope`."""

    name: str
    scope: str
    kind: Kind
    limit: int
    period_secs: float

    def key(self, identity: str) -> str:
        """Storage key, e.g. `rate_limit:org:<org id>` (CONTRACT §12.4 key names)."""
        return f"rate_limit:{self.name}:{identity}"


def token_bucket(name: str, scope: str, rps: float, burst: int) -> Rule:
    """`burst` tokens, refilled at `rps` per second (a full bucket takes burst / rps s)."""
    rps = max(0.001, float(rps))
    burst = max(1, int(burst))
    return Rule(name, scope, "bucket", burst, burst / rps)


def per_minute(name: str, scope: str, amount: int) -> Rule:
    return Rule(name, scope, "window", max(1, int(amount)), 60.0)


def per_hour(name: str, scope: str, amount: int) -> Rule:
    return Rule(name, scope, "window", max(1, int(amount)), 3600.0)


# Fixed rules of CONTRACT §12.4.
ADMIN_IP = per_minute("admin:ip", "ip", 60)
LOGIN_KEY = per_minute("login", "login", 5)
CHECK_EMAIL_IP = (per_minute("check_email:ip:m", "ip", 10), per_hour("check_email:ip:h", "ip", 60))
CHECK_SLUG_IP = (per_minute("check_slug:ip:m", "ip", 60), per_hour("check_slug:ip:h", "ip", 300))


def public_ip(rps: int, burst: int) -> Rule:
    """RATE_LIMIT_REQUESTS_PER_SECOND / RATE_LIMIT_BURST_SIZE per client IP on public routes."""
    return token_bucket("public:ip", "ip", rps, burst)


def organization(rps: int, burst: int) -> Rule:
    """The plan's `rate_limit_requests_per_second` / `rate_limit_burst` per organization."""
    return token_bucket("org", "organization", rps, burst)


def api_key(per_min: int) -> Rule:
    """An API key's own `rate_limit` (requests per minute, fixed 60 s window)."""
    return per_minute("api_key", "api_key", per_min)


@dataclass(frozen=True)
class Decision:
    """The outcome for one rule. `reset` is integer Unix seconds; `retry_after` whole seconds."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    scope: str
    retry_after: int = 0
    unavailable: bool = False

    def header_pairs(self) -> list[tuple[str, str]]:
        """`X-RateLimit-Limit/-Remaining/-Reset/-Scope` (+ `Retry-After` when denied)."""
        pairs = [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(self.reset)),
            ("X-RateLimit-Scope", self.scope),
        ]
        if not self.allowed:
            pairs.append(("Retry-After", str(self.retry_after)))
        return pairs

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode(), v.encode()) for k, v in self.header_pairs()]

    def error_body(self, message: str | None = None) -> dict[str, Any]:
        """The 429 body of CONTRACT §3.3 (`error: "Rate limit unavailable"` when fail-closed)."""
        return {
            "error": "Rate limit unavailable" if self.unavailable else "Rate limit exceeded",
            "code": "RATE_LIMIT_EXCEEDED",
            "message": message or (
                "Rate limiting is temporarily unavailable; retry shortly" if self.unavailable
                else f"Rate limit exceeded ({self.scope}); retry in {self.retry_after} s"
            ),
            "retry_after_secs": self.retry_after,
            "limit": self.limit,
            "remaining": 0,
            "reset_at": self.reset,
        }

    def error(self, message: str | None = None) -> RateLimited:
        """The SpooledError to raise for a denied decision."""
        body = self.error_body(message)
        return RateLimited(
            body.pop("message"), extra={k: v for k, v in body.items() if k != "code"},
            headers=dict(self.header_pairs()),
        )


def unavailable(rule: Rule) -> Decision:
    """Fail-closed answer while the shared store is down (CONTRACT §12.4): retry in 5 s."""
    return Decision(
        allowed=False, limit=rule.limit, remaining=0, reset=int(time.time()) + 5,
        scope=rule.scope, retry_after=5, unavailable=True,
    )


def tightest(decisions: list[Decision]) -> Decision | None:
    """The decision to report: the first denial, else the one with the fewest requests left."""
    if not decisions:
        return None
    for d in decisions:
        if not d.allowed:
            return d
    return min(decisions, key=lambda d: (d.remaining, -d.reset))
