"""JWT revocation in Redis (CONTRACT §4.2): `token_blacklist:<jti>` and `session_revoked:<sid>`.

Shared by every replica through Redis. Without Redis there is nothing to check and logout
answers 503; a Redis error while checking is logged and treated as "not revoked" so an outage
does not lock every JWT client out (the referenced API key is still re-read on each request).
"""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis

from spooled_backend.core.errors import ServiceUnavailable

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_SECS = 0.5


def blacklist_key(jti: str) -> str:
    return f"token_blacklist:{jti}"


def session_key(sid: str) -> str:
    return f"session_revoked:{sid}"


class RevocationStore:
    """`is_revoked` on every JWT request; `revoke` on logout."""

    def __init__(self, redis: Redis | None, redis_configured: bool = False) -> None:
        self.redis = redis
        self.redis_configured = redis_configured

    @property
    def unavailable_message(self) -> str:
        """Why logout cannot work here: Redis unset, or set but unreachable at start."""
        if self.redis_configured:
            return ("Logout requires Redis: REDIS_URL is set but Redis was unreachable when the "
                    "server started (running without cache); restart once Redis is up")
        return "Logout requires Redis, which is not configured (REDIS_URL is not set)"

    @property
    def available(self) -> bool:
        return self.redis is not None

    async def is_revoked(self, jti: str, sid: str | None) -> bool:
        """True when the token's `jti` or its session `sid` was revoked. One round trip."""
        if self.redis is None:
            return False
        keys = [blacklist_key(jti)] + ([session_key(sid)] if sid else [])
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECS):
                found = await self.redis.exists(*keys)
        except Exception as exc:  # noqa: BLE001 - degraded mode, see module docstring
            log.warning("revocation check failed; treating token as not revoked", error=str(exc))
            return False
        return bool(found)

    async def revoke(
        self, tokens: list[tuple[str, int]], sessions: list[tuple[str, int]]
    ) -> None:
        """Blacklist `(jti, ttl_seconds)` pairs and revoke `(sid, ttl_seconds)` sessions.

        Raises ServiceUnavailable (503) without Redis or when Redis fails (CONTRACT §7.2).
        """
        if self.redis is None:
            raise ServiceUnavailable(self.unavailable_message)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for jti, ttl in tokens:
                    pipe.set(blacklist_key(jti), "1", ex=max(1, ttl))
                for sid, ttl in sessions:
                    pipe.set(session_key(sid), "1", ex=max(1, ttl))
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - surfaced as the contract's 503
            log.warning("token revocation failed", error=str(exc))
            raise ServiceUnavailable(
                "Token revocation is unavailable: Redis is configured but not answering; try again"
            ) from None
