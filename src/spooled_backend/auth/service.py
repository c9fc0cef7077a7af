"""Authenticating API keys (CONTRACT §4.1).

A key is found by the SHA-256 lookup hash, bcrypt-verified once per process, and the result of
that verification is cached (keyed by the lookup hash and the stored bcrypt hash).

The key row (joined with its organization's plan) is cached per process too (`KeyRowCache`), and
the fast lane (core/fastlane.py, the hot job routes) authenticates from it without a lookup round
trip. It stays exact because the fast lane's first round trip (`BEGIN` + tenant binding) also
runs `spooled_check_key(key_id, fingerprint)` (migration 0008): a key revoked, expired, of a
deleted organization, or with a changed scope/limit/plan fails that check (SQLSTATE SPK01) and
the request is authenticated again from the database, so revocation takes effect on the very
next request on every replica. The other routes read the key row on every request as before.
A trigger's `NOTIFY spooled_auth_revoked` (0008) drops entries early on every replica (through
the process's listener), so a revoked key usually never reaches the check; entries are re-read
after `KEY_ROW_MAX_AGE_SECS` whatever happens.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from spooled_backend.auth import keys
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import Unauthorized

SELECT_KEY_BY_LOOKUP = """
SELECT k.id, k.organization_id, k.key_hash, k.queues, k.rate_limit, k.is_active, k.expires_at,
       k.last_used, o.plan_tier, o.custom_limits, spooled_key_fingerprint(k, o) AS fingerprint
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.lookup_hash = $1
"""

SELECT_LEGACY_CANDIDATES = """
SELECT k.id, k.organization_id, k.key_hash, k.queues, k.rate_limit, k.is_active, k.expires_at,
       k.last_used, o.plan_tier, o.custom_limits, spooled_key_fingerprint(k, o) AS fingerprint
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.lookup_hash IS NULL AND k.key_prefix = $1 AND k.is_active
LIMIT 100
"""

BACKFILL_LOOKUP = "UPDATE api_keys SET lookup_hash = $2 WHERE id = $1 AND lookup_hash IS NULL"
TOUCH_LAST_USED = "UPDATE api_keys SET last_used = now() WHERE id = $1"
LAST_USED_EVERY = timedelta(minutes=5)

INVALID = "Invalid API key"
log = structlog.get_logger(__name__)
AUTH_CHANNEL = "spooled_auth_revoked"  # payloads: `k:<api key id>`, `o:<organization id>`
KEY_ROW_MAX_AGE_SECS = 60.0


class KeyRowCache:
    """Key rows by lookup hash, each reused for at most `max_age_secs` (see module docstring)."""

    def __init__(self, max_age_secs: float = KEY_ROW_MAX_AGE_SECS, max_entries: int = 10_000) -> None:
        self.max_age_secs = max_age_secs
        self._max = max_entries
        self._rows: dict[str, tuple[float, asyncpg.Record]] = {}

    def get(self, digest: str) -> asyncpg.Record | None:
        entry = self._rows.get(digest)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.max_age_secs:
            del self._rows[digest]
            return None
        return entry[1]

    def put(self, digest: str, row: asyncpg.Record) -> None:
        if len(self._rows) >= self._max:
            self._rows.pop(next(iter(self._rows)))
        self._rows[digest] = (time.monotonic(), row)

    def forget(self, *, key_id: str | None = None, org_id: str | None = None) -> None:
        for digest, (_, row) in list(self._rows.items()):
            if row["id"] == key_id or row["organization_id"] == org_id:
                self._rows.pop(digest, None)

    def clear(self) -> None:
        self._rows.clear()

    def on_notify(self, payload: str) -> None:
        """Listener callback for AUTH_CHANNEL; anything unexpected clears everything."""
        kind, _, ident = payload.partition(":")
        if kind == "k" and ident:
            self.forget(key_id=ident)
        elif kind == "o" and ident:
            self.forget(org_id=ident)
        else:
            self.clear()


class VerifiedKeyCache:
    """Remembers which (lookup hash, bcrypt hash) pairs already passed bcrypt in this process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._verified: dict[str, str] = {}
        self._max = max_entries
        self._inflight: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self.rows = KeyRowCache()

    def is_verified(self, digest: str, key_hash: str) -> bool:
        return self._verified.get(digest) == key_hash

    def remember(self, digest: str, key_hash: str) -> None:
        if len(self._verified) >= self._max:
            self._verified.pop(next(iter(self._verified)))
        self._verified[digest] = key_hash

    async def verify(self, raw_key: str, digest: str, key_hash: str) -> bool:
        """bcrypt-verify once per process: concurrent first requests with the same key share
        one bcrypt run (in a worker thread) instead of each paying ~0.25 s of CPU (cost 12)."""
        if self.is_verified(digest, key_hash):
            return True
        inflight = self._inflight
        pending = inflight.get((digest, key_hash))
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        inflight[(digest, key_hash)] = future
        try:
            ok = await asyncio.to_thread(keys.verify_key, raw_key, key_hash)
            if ok:
                self.remember(digest, key_hash)
            future.set_result(ok)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; no "never retrieved" warning
            raise
        finally:
            inflight.pop((digest, key_hash), None)
        return ok


def context_from_key_row(row: asyncpg.Record) -> AuthContext:
    """AuthContext of an api_keys row joined with its organization (plan, custom limits)."""
    return AuthContext(
        organization_id=row["organization_id"],
        api_key_id=row["id"],
        queues=tuple(row["queues"] or ()),
        plan_tier=row["plan_tier"],
        custom_limits=row["custom_limits"],
        rate_limit=row["rate_limit"],
        fingerprint=row.get("fingerprint"),
    )


def _usable(row: asyncpg.Record) -> bool:
    if not row["is_active"] or row["plan_tier"] == "deleted":
        return False
    expires = row["expires_at"]
    return expires is None or expires > datetime.now(UTC)


def _invalid(reason: str, **fields: object) -> Unauthorized:
    """The 401 of a refused key, logged with the deployment guide's message (never the key)."""
    log.warning(INVALID, reason=reason, **fields)
    return Unauthorized(INVALID)


def cached_key_context(raw_key: str, cache: VerifiedKeyCache) -> AuthContext | None:
    """The AuthContext of a usable, verified key row in `cache`; None when not cached (no query,
    no bcrypt). The caller must check the row's fingerprint in its transaction
    (`spooled_check_key`), which refuses a key revoked since it was cached."""
    if not keys.looks_like_api_key(raw_key):
        return None
    digest = keys.lookup_hash(raw_key)
    row = cache.rows.get(digest)
    if row is not None and _usable(row) and cache.is_verified(digest, row["key_hash"]):
        return context_from_key_row(row)
    return None


async def authenticate_api_key(
    conn: asyncpg.Connection, raw_key: str, cache: VerifiedKeyCache
) -> AuthContext:
    """Resolve a raw API key to an AuthContext.

    Raises Unauthorized("Invalid API key") for malformed, unknown, revoked or expired keys and
    keys of deleted organizations. No bcrypt runs for a value that fails the cheap lookup.
    """
    if not keys.looks_like_api_key(raw_key):
        raise _invalid("malformed")
    digest = keys.lookup_hash(raw_key)
    row = await conn.fetchrow(SELECT_KEY_BY_LOOKUP, digest)
    if row is None:
        row = await _legacy_lookup(conn, raw_key, digest, cache)
    if row is None:
        raise _invalid("unknown")
    if not _usable(row):
        raise _invalid("inactive, expired or organization deleted", key_id=row["id"])
    if not await cache.verify(raw_key, digest, row["key_hash"]):
        raise _invalid("hash mismatch", key_id=row["id"])
    last_used = row["last_used"]
    if last_used is None or datetime.now(UTC) - last_used > LAST_USED_EVERY:
        await conn.execute(TOUCH_LAST_USED, row["id"])
    cache.rows.put(digest, row)
    return context_from_key_row(row)


async def _legacy_lookup(
    conn: asyncpg.Connection, raw_key: str, digest: str, cache: VerifiedKeyCache
) -> asyncpg.Record | None:
    """Rows created without a lookup hash: prefix scan, bcrypt, then back-fill (CONTRACT §4.1)."""
    prefix = raw_key[:8]
    if prefix not in keys.KEY_PREFIXES:
        return None
    for row in await conn.fetch(SELECT_LEGACY_CANDIDATES, prefix):
        if await asyncio.to_thread(keys.verify_key, raw_key, row["key_hash"]):
            await conn.execute(BACKFILL_LOOKUP, row["id"], digest)
            cache.remember(digest, row["key_hash"])
            return row
    return None
