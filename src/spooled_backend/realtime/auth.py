"""Who may open a realtime stream, and with which filters (CONTRACT §4.4, §14.2, §14.3).

Credentials, in order: `Authorization: Bearer`, `?token=` (an access JWT or an API key),
`?api_key=`. They are validated exactly like REST (core.deps.authenticate) on a pool
connection held only for that check, so an idle stream holds no database connection; the
same check runs again every `REALTIME_AUTH_RECHECK_SECS` while it streams (a revoked key or an
expired JWT ends it), with results shared by streams that present the same credential.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping

import asyncpg

from spooled_backend.core.context import AuthContext
from spooled_backend.core.deps import MAX_BEARER_CHARS, authenticate
from spooled_backend.core.errors import AccessDenied, BadRequest, RateLimited, SpooledError, Unauthorized
from spooled_backend.core.state import AppState
from spooled_backend.realtime.envelope import variant_of
from spooled_backend.realtime.hub import Filters

QUEUE_FILTER_RE = re.compile(r"^[A-Za-z0-9._*-]{1,100}$")
JOB_FILTER_MAX = 128
RECHECK_SHARE_SECS = 5.0


def credential_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The first credential present (header, `token`, `api_key`); 401 when none."""
    header = headers.get("authorization")
    value: str | None = None
    if header:
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            value = rest.strip()
    value = value or query.get("token") or query.get("api_key")
    if not value:
        raise Unauthorized("Missing credentials: send Authorization: Bearer, ?token= or ?api_key=")
    value = value.strip()
    if len(value) > MAX_BEARER_CHARS or not value.isascii():
        raise Unauthorized("Invalid credentials")
    return value


async def authenticate_stream(state: AppState, credential: str) -> AuthContext:
    """Validate `credential` on a briefly borrowed connection (raises Unauthorized)."""
    async with state.pool.acquire() as conn, conn.transaction():
        return await authenticate(state, conn, credential)


def check_queue_filter(auth: AuthContext, queue: str | None) -> str | None:
    """400 for a malformed queue filter, 403 for one outside the key's scope."""
    if queue is None or queue == "":
        return None
    if not QUEUE_FILTER_RE.match(queue):
        raise BadRequest("Invalid queue filter: 1-100 characters of [A-Za-z0-9._*-]")
    if not auth.can_access_queue(queue):
        raise AccessDenied(f"API key is not allowed to access queue '{queue}'")
    return queue


def parse_filters(auth: AuthContext, query: Mapping[str, str]) -> Filters:
    """`queue`, `job_id`, `events` (comma list of dotted names, SDK names or variants; `*`
    or empty means all; unknown names are ignored)."""
    queue = check_queue_filter(auth, query.get("queue"))
    job_id = query.get("job_id") or None
    if job_id is not None and (len(job_id) > JOB_FILTER_MAX or not job_id.isascii()):
        raise BadRequest("Invalid job_id filter")
    types: frozenset[str] | None = None
    raw = query.get("events")
    if raw:
        names = [n for n in (p.strip() for p in raw.split(",")) if n]
        if names and "*" not in names:
            types = frozenset(v for v in (variant_of(n) for n in names) if v is not None)
    return Filters(queue=queue, job_id=job_id, types=types)


def check_capacity(state: AppState, org_id: str, kind: str) -> None:
    """429 when the organization already has its maximum of `kind` streams in this process."""
    cap = state.settings.realtime_max_connections_per_org
    if state.events.hub.count(org_id, kind) >= cap:
        what = "WebSocket connections" if kind == "ws" else "event streams"
        raise RateLimited(f"Too many {what} for this organization (limit {cap})")


async def still_valid(state: AppState, credential: str) -> SpooledError | None:
    """Re-validation while streaming: None when `credential` still authenticates, else the
    error that ends the stream. Outcomes are shared for a few seconds by the streams of one
    credential (a dashboard opens several with the same JWT). A database that cannot answer
    right now does not end streams (they are re-checked at the next interval)."""
    recent = state.events.auth_checks
    key = hashlib.sha256(credential.encode()).hexdigest()
    now = time.monotonic()
    cached = recent.get(key)
    if cached is not None and now - cached[0] < RECHECK_SHARE_SECS:
        return cached[1]
    outcome: SpooledError | None = None
    try:
        await authenticate_stream(state, credential)
    except SpooledError as exc:
        if exc.status in (401, 403):
            outcome = exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        return None
    if len(recent) > 10_000:
        recent.clear()
    recent[key] = (now, outcome)
    return outcome
