"""Process-wide services, created in the app lifespan and reached through dependencies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from redis.asyncio import Redis

from spooled_backend.auth.revocation import RevocationStore
from spooled_backend.auth.service import VerifiedKeyCache
from spooled_backend.config import Settings
from spooled_backend.db.listener import Listener
from spooled_backend.db.onetrip import OneTrip
from spooled_backend.jobs.wakeup import ClaimWakeups
from spooled_backend.ratelimit.limiter import RateLimiter
from spooled_backend.realtime.bus import EventBus

if TYPE_CHECKING:
    from spooled_backend.jobs.coalesce import GroupCommit


@dataclass
class AppState:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis | None
    events: EventBus
    key_cache: VerifiedKeyCache = field(default_factory=VerifiedKeyCache)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str = "0.1.0"
    # Authentication and hardening (set in the lifespan): JWT revocation store (Redis), the
    # rate limiter, and the RLS tenant role the login role may assume (None: app-level only).
    revocations: RevocationStore = field(default_factory=lambda: RevocationStore(None))
    rate_limiter: RateLimiter | None = None
    tenant_role: str | None = None
    # The process's single LISTEN connection (db/listener.py), started in the lifespan.
    listener: Listener | None = None
    # DATABASE_READ_URL: a second pool on a read replica for list/stats/dashboard (core/deps.py
    # `ReadConn`); None = those reads use the primary pool.
    read_pool: asyncpg.Pool | None = None
    # Wakes this process's cron firing loop (schedules/tasks.py) after a schedule changed.
    schedule_wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Outgoing webhook delivery loop and its SSRF-pinned sender (webhooks/tasks.py).
    webhooks: Any = None
    # Claimers waiting with `wait_ms`, woken through the listener (jobs/wakeup.py).
    claim_wakeups: ClaimWakeups = field(default_factory=ClaimWakeups)
    # Concurrent single completes/fails and creates applied together (jobs/coalesce.py),
    # set in the lifespan.
    acks: GroupCommit[Any] = None  # type: ignore[assignment]
    creates: GroupCommit[Any] = None  # type: ignore[assignment]
    # The hot statements as single-round-trip functions (db/onetrip.py), installed in the
    # lifespan.
    one_trip: OneTrip = field(default_factory=OneTrip)
