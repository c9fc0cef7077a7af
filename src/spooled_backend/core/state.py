"""Process-wide services, created in the app lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from spooled_backend.auth.service import VerifiedKeyCache
from spooled_backend.config import Settings
from spooled_backend.realtime.bus import EventBus


@dataclass
class AppState:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis | None
    events: EventBus
    key_cache: VerifiedKeyCache = field(default_factory=VerifiedKeyCache)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str = "0.1.0"
