"""Plan quotas: the one place that says "you may create this" (CONTRACT §12.1–12.3, §3.3).

Stable API used by every resource that creates things:

* `reserve(conn, settings, org, resource, adding=1)` — create-type caps (`queues`, `workers`,
  `api_keys`, `schedules`, `workflows`, `webhooks`). Call it **inside the transaction that
  inserts the new rows**: it takes a per-(org, resource) transaction advisory lock, counts, and
  raises when `current + adding > limit`; the lock is held until that transaction ends, so
  concurrent creators are serialised and the cap holds exactly.
* `reserve_new_queues(conn, settings, org, queue_names)` — charges the `queues` cap only for the
  names that are not queues yet (§9.1). Same transaction rule.
* `reserve_jobs(conn, settings, org, queue_names, count)` — everything job creation needs: new
  queue names, the `active_jobs` pre-check and the atomic `jobs_per_day` reservation. Returns a
  `JobReservation`; call `refund(conn, n)` for idempotent duplicates (§8.5).
* `usage(conn, settings, org)` — the `GET /organizations/usage` document (§12.3).

`org` is anything with `organization_id`, `plan_tier` and `custom_limits` (an `AuthContext`, or
`OrgPlan` for callers without one, e.g. the admin API). Errors: `QuotaExceeded` (429, body of
§3.3, never `Retry-After`) and `FeatureDisabled` (403 when the limit is 0).
`PLAN_LIMITS_ENABLED=false` turns every limit into "unlimited" (§20 D4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.errors import FeatureDisabled, QuotaExceeded
from spooled_backend.organizations import quota_queries as q
from spooled_backend.organizations.plans import limits_for, upgrade_tier

# resource name (wire) → PlanLimits key
LIMIT_KEYS: dict[str, str] = {
    "jobs_per_day": "max_jobs_per_day",
    "active_jobs": "max_active_jobs",
    "queues": "max_queues",
    "workers": "max_workers",
    "api_keys": "max_api_keys",
    "schedules": "max_schedules",
    "workflows": "max_workflows",
    "webhooks": "max_webhooks",
}
CREATE_CAPS = ("queues", "workers", "api_keys", "schedules", "workflows", "webhooks")
USAGE_KEYS = {  # usage document key → resource
    "jobs_today": "jobs_per_day",
    "active_jobs": "active_jobs",
    "queues": "queues",
    "workers": "workers",
    "api_keys": "api_keys",
    "schedules": "schedules",
    "workflows": "workflows",
    "webhooks": "webhooks",
}


class PlanSubject(Protocol):
    """What quota checks need to know about an organization."""

    @property
    def organization_id(self) -> str: ...

    @property
    def plan_tier(self) -> str: ...

    @property
    def custom_limits(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class OrgPlan:
    """A `PlanSubject` for callers that have no AuthContext (admin API, background loops)."""

    organization_id: str
    plan_tier: str
    custom_limits: dict[str, Any] | None = None


async def load_plan(conn: asyncpg.Connection, org_id: str) -> OrgPlan | None:
    """The organization's current plan, or None when it does not exist."""
    row = await conn.fetchrow(q.ORG_PLAN, org_id)
    if row is None:
        return None
    return OrgPlan(row["id"], row["plan_tier"], row["custom_limits"])


def effective_limits(settings: Settings, org: PlanSubject) -> dict[str, Any]:
    """Serialised PlanLimits for `org` (custom limits applied, D4 honoured)."""
    return limits_for(org.plan_tier, org.custom_limits, settings.plan_limits_enabled)


def limit_of(settings: Settings, org: PlanSubject, resource: str) -> int | None:
    """The cap for `resource` (a key of LIMIT_KEYS); None = unlimited."""
    value = effective_limits(settings, org)[LIMIT_KEYS[resource]]
    return None if value is None else int(value)


def _label(resource: str) -> str:
    return resource.replace("_", " ")


def quota_error(limits: dict[str, Any], resource: str, current: int, limit: int) -> QuotaExceeded:
    """The 429 body of CONTRACT §3.3 (no Retry-After header, ever)."""
    tier = limits["tier"]
    nxt = upgrade_tier(tier)
    message = f"{_label(resource)} limit reached ({current}/{limit})."
    if nxt is not None:
        message += f" Upgrade to {nxt} for higher limits."
    extra: dict[str, Any] = {
        "error": "limit_exceeded",
        "resource": resource,
        "current": current,
        "limit": limit,
        "plan": tier,
    }
    if nxt is not None:
        extra["upgrade_to"] = nxt
    return QuotaExceeded(message, extra=extra)


def feature_error(limits: dict[str, Any], resource: str) -> FeatureDisabled:
    """403 FEATURE_DISABLED for a resource whose limit is 0 on this plan (CONTRACT §3.3)."""
    tier = limits["tier"]
    nxt = upgrade_tier(tier)
    message = f"{resource} is not available on the {limits['display_name']} plan."
    if nxt is not None:
        message += f" Upgrade to {nxt} to enable it."
    extra: dict[str, Any] = {"error": "feature_disabled", "feature": resource, "plan": tier}
    if nxt is not None:
        extra["upgrade_to"] = nxt
    return FeatureDisabled(message, extra=extra)


def _require_transaction(conn: asyncpg.Connection, what: str) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError(f"{what} must run inside the transaction that inserts the rows")


async def count(conn: asyncpg.Connection, org_id: str, resource: str) -> int:
    """Current count of a resource per CONTRACT §12.2 "Resource counting"."""
    if resource == "jobs_per_day":
        return int(await conn.fetchval(q.DAILY_JOBS, org_id) or 0)
    return int(await conn.fetchval(q.COUNTERS[resource], org_id))


async def reserve(
    conn: asyncpg.Connection,
    settings: Settings,
    org: PlanSubject,
    resource: str,
    adding: int = 1,
) -> None:
    """Check a create-type cap (`resource` in CREATE_CAPS) before inserting `adding` rows.

    Must be called inside the caller's transaction (RuntimeError otherwise); holds the
    per-(org, resource) advisory lock until it ends. Raises FeatureDisabled (403) when the
    limit is 0 and QuotaExceeded (429) when `current + adding > limit` (CONTRACT §12.2).
    Unlimited resources return at once without locking.
    """
    if resource not in CREATE_CAPS:
        raise ValueError(f"unknown create-type resource {resource!r}")
    limits = effective_limits(settings, org)
    limit = limits[LIMIT_KEYS[resource]]
    if limit is None or adding <= 0:
        return
    if limit == 0:
        raise feature_error(limits, resource)
    _require_transaction(conn, "quotas.reserve")
    await conn.execute(q.LOCK_RESOURCE, org.organization_id, resource)
    current = await count(conn, org.organization_id, resource)
    if current + adding > limit:
        raise quota_error(limits, resource, current, int(limit))


async def reserve_new_queues(
    conn: asyncpg.Connection, settings: Settings, org: PlanSubject, queue_names: Iterable[str]
) -> None:
    """Charge the `queues` cap for the names among `queue_names` that are not queues yet.

    A queue exists when it has a config row, holds jobs or is targeted by an active schedule
    (CONTRACT §9.1); jobs into existing queues are never blocked. Same transaction rule and
    errors as `reserve`. Which names are new is decided again under the lock, so two requests
    racing into the same new queue are charged once.
    """
    names = sorted(set(queue_names))
    limits = effective_limits(settings, org)
    limit = limits["max_queues"]
    if not names or limit is None:
        return
    if not await _new_queue_names(conn, org.organization_id, names):
        return
    if limit == 0:
        raise feature_error(limits, "queues")
    _require_transaction(conn, "quotas.reserve_new_queues")
    await conn.execute(q.LOCK_RESOURCE, org.organization_id, "queues")
    new = await _new_queue_names(conn, org.organization_id, names)
    if not new:
        return
    current = await count(conn, org.organization_id, "queues")
    if current + len(new) > limit:
        raise quota_error(limits, "queues", current, int(limit))


async def _new_queue_names(conn: asyncpg.Connection, org_id: str, names: list[str]) -> list[str]:
    existing = {r["n"] for r in await conn.fetch(q.EXISTING_QUEUES, org_id, names)}
    return [n for n in names if n not in existing]


@dataclass
class JobReservation:
    """Jobs charged to today's counter; `refund` gives back duplicates (CONTRACT §8.5)."""

    organization_id: str
    day: date | None  # UTC day of the reservation; None when the plan has no daily cap
    reserved: int

    async def refund(self, conn: asyncpg.Connection, n: int) -> None:
        """Return `n` unused reservations: never below zero, never across a daily reset."""
        n = min(n, self.reserved)
        if self.day is None or n <= 0:
            return
        await conn.execute(q.REFUND_DAILY_JOBS, self.organization_id, n, self.day)
        self.reserved -= n


async def reserve_daily_jobs(
    conn: asyncpg.Connection, settings: Settings, org: PlanSubject, n: int
) -> JobReservation:
    """Atomically add `n` to today's `jobs_created_today` if it stays ≤ `max_jobs_per_day`.

    One row-locking UPDATE (daily reset by UTC date folded in), so concurrent reservations can
    never overshoot. Raises QuotaExceeded("jobs_per_day"). Plans without a daily cap are not
    counted here (usage then counts today's jobs directly), which keeps job creation for
    unlimited organizations free of a per-org hot row.
    """
    limits = effective_limits(settings, org)
    limit = limits["max_jobs_per_day"]
    if limit is None or n <= 0:
        return JobReservation(org.organization_id, None, 0)
    if limit == 0:
        raise feature_error(limits, "jobs_per_day")
    row = await conn.fetchrow(q.RESERVE_DAILY_JOBS, org.organization_id, n, int(limit))
    if row is None:
        await conn.execute(q.ENSURE_USAGE_ROW, org.organization_id)
        row = await conn.fetchrow(q.RESERVE_DAILY_JOBS, org.organization_id, n, int(limit))
    if row is None:
        current = await count(conn, org.organization_id, "jobs_per_day")
        raise quota_error(limits, "jobs_per_day", current, int(limit))
    return JobReservation(org.organization_id, row["last_daily_reset"], n)


async def check_active_jobs(
    conn: asyncpg.Connection, settings: Settings, org: PlanSubject, adding: int
) -> None:
    """Best-effort pre-check of `max_active_jobs` (pending+scheduled+processing), §12.2."""
    limits = effective_limits(settings, org)
    limit = limits["max_active_jobs"]
    if limit is None or adding <= 0:
        return
    current = await count(conn, org.organization_id, "active_jobs")
    if current + adding > limit:
        raise quota_error(limits, "active_jobs", current, int(limit))


async def check_active_jobs_after(
    conn: asyncpg.Connection, settings: Settings, org: PlanSubject, added: int
) -> None:
    """`max_active_jobs` check for jobs made active again (manual and DLQ retry, §7.7), run
    after the UPDATE inside the caller's savepoint: raising QuotaExceeded (429) rolls the
    retry back. `added` is how many jobs the retry re-activated."""
    limits = effective_limits(settings, org)
    limit = limits["max_active_jobs"]
    if limit is None or added <= 0:
        return
    current = await count(conn, org.organization_id, "active_jobs")
    if current > limit:
        raise quota_error(limits, "active_jobs", current - added, int(limit))


async def reserve_jobs(
    conn: asyncpg.Connection,
    settings: Settings,
    org: PlanSubject,
    queue_names: Iterable[str],
    count_: int,
) -> JobReservation:
    """All quota work for creating `count_` jobs into `queue_names`, in the caller's transaction.

    Order: new-queue cap (`queues`, 429), `active_jobs` pre-check (429), then the atomic
    `jobs_per_day` reservation (429). All-or-nothing: a refusal leaves nothing reserved.
    Insert in the same transaction, then `refund(conn, duplicates)` for idempotency hits;
    if the transaction rolls back the reservation rolls back with it.
    """
    await reserve_new_queues(conn, settings, org, queue_names)
    await check_active_jobs(conn, settings, org, count_)
    return await reserve_daily_jobs(conn, settings, org, count_)


async def reset_daily_usage(conn: asyncpg.Connection, org_id: str) -> None:
    """Admin reset: `jobs_created_today = 0`, `last_daily_reset = today` (CONTRACT §7.14)."""
    await conn.execute(q.ENSURE_USAGE_ROW, org_id)
    await conn.execute(q.RESET_DAILY_JOBS, org_id)


async def jobs_today(conn: asyncpg.Connection, settings: Settings, org: PlanSubject) -> int:
    """Jobs created today (UTC). With a daily cap this is the reserved counter (what the cap is
    checked against); without one the counter is not maintained, so today's jobs are counted."""
    if limit_of(settings, org, "jobs_per_day") is not None:
        return int(await conn.fetchval(q.DAILY_JOBS, org.organization_id) or 0)
    return int(await conn.fetchval(q.COUNT_JOBS_TODAY, org.organization_id))


async def resource_counts(
    conn: asyncpg.Connection, settings: Settings, org: PlanSubject
) -> dict[str, int]:
    """Current counts keyed by usage key (`jobs_today`, `active_jobs`, … `webhooks`)."""
    out: dict[str, int] = {"jobs_today": await jobs_today(conn, settings, org)}
    for key, resource in USAGE_KEYS.items():
        if key != "jobs_today":
            out[key] = await count(conn, org.organization_id, resource)
    return out


async def usage(conn: asyncpg.Connection, settings: Settings, org: PlanSubject) -> dict[str, Any]:
    """The UsageInfo document of CONTRACT §12.3 (see `organizations.usage.build_usage`)."""
    from spooled_backend.organizations.usage import build_usage  # usage.py imports this module

    return await build_usage(conn, settings, org)
