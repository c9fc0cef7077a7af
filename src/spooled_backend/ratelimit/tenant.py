"""Per-organization and per-API-key limits for authenticated requests (CONTRACT §12.4).

The organization bucket uses the plan's `rate_limit_requests_per_second` / `rate_limit_burst`
(with `custom_limits` overrides, via `organizations.plans.limits_for`); PLAN_LIMITS_ENABLED=false
(§20 D4) switches it off. A key's own `rate_limit` (requests per minute) applies on top.
"""

from __future__ import annotations

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.organizations.plans import limits_for
from spooled_backend.ratelimit import rules
from spooled_backend.ratelimit.limiter import RateLimiter
from spooled_backend.ratelimit.rules import Decision, Rule


def tenant_rules(settings: Settings, auth: AuthContext) -> list[tuple[Rule, str]]:
    """(rule, identity) pairs for this caller; empty when nothing limits it."""
    out: list[tuple[Rule, str]] = []
    plan = limits_for(auth.plan_tier, auth.custom_limits, enabled=settings.plan_limits_enabled)
    rps = plan.get("rate_limit_requests_per_second")
    burst = plan.get("rate_limit_burst")
    if isinstance(rps, int) and rps > 0:
        burst = burst if isinstance(burst, int) and burst > 0 else rps
        out.append((rules.organization(rps, burst), auth.organization_id))
    if auth.rate_limit is not None and auth.rate_limit > 0:
        out.append((rules.api_key(auth.rate_limit), auth.api_key_id))
    return out


async def enforce_tenant(
    limiter: RateLimiter, settings: Settings, auth: AuthContext
) -> Decision | None:
    """Count this request; returns the decision to report in headers (None when unlimited).

    Raises RateLimited (429 RATE_LIMIT_EXCEEDED, Retry-After, X-RateLimit-*) when over a limit;
    it is raised before the route runs, so a 429 means nothing was done.
    """
    decision = rules.tightest(await limiter.check(tenant_rules(settings, auth)))
    if decision is not None and not decision.allowed:
        raise decision.error()
    return decision
