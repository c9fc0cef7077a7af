"""Tenant isolation in PostgreSQL: row-level security bound per transaction (migration 0002).

Every request runs in one transaction (`core.deps.get_conn`). Until authentication identifies
the organization, the connection acts as the login role, which owns the tables and therefore
bypasses RLS: that is the explicit bypass path for migrations, API-key lookup by hash (the org
is not known yet), public and admin routes, and the background loops (which use the pool
directly). Once authenticated, `bind_tenant` runs

    SELECT set_config('role', 'spooled_tenant', true), set_config('app.current_org_id', $org, true)

i.e. `SET LOCAL ROLE` + a transaction-local setting: both end with the transaction, so a pooled
connection (or PgBouncer in transaction mode) never carries one tenant's binding into another
request. `spooled_tenant` is a NOLOGIN role without BYPASSRLS whose policies only show rows with
`organization_id = current_setting('app.current_org_id', true)`.

Events (realtime publish, webhooks) must not leave before the request's transaction commits;
`after_commit` defers a callback to the commit of the current request transaction (or runs it
now outside one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token

import asyncpg
import structlog

log = structlog.get_logger(__name__)

TENANT_ROLE = "spooled_tenant"
BIND_TENANT = "SELECT set_config('role', $1, true), set_config('app.current_org_id', $2, true)"
BIND_ORG_ONLY = "SELECT set_config('app.current_org_id', $1, true)"



class TrackingConnection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg connection that remembers how its last COMMIT ended.

    PostgreSQL answers COMMIT on a transaction aborted by an error with the tag `ROLLBACK` and
    no error. `core.deps.get_conn` checks `last_commit_status` after committing a request, so
    an error swallowed outside a savepoint becomes a loud 500 instead of silently lost writes.
    """

    last_commit_status: str | None = None

    def get_reset_query(self) -> str:
        """No reset round trip when a connection goes back to the pool.

        Everything this service sets on a connection is transaction-scoped (`set_config(…, true)`,
        `SET LOCAL ROLE`, `pg_advisory_xact_lock`), and asyncpg still ends any open transaction on
        release, so asyncpg's default `RESET ALL; CLOSE ALL; UNLISTEN *; …` would only add a
        round trip to every request. Code that needs session state (LISTEN) uses its own
        connection, not the pool.
        """
        return ""

    def forget_commit_status(self) -> None:
        """Called at the start of a request (reached through the pool's proxy)."""
        self.last_commit_status = None

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        status: str = await super().execute(query, *args, timeout=timeout)
        if query == "COMMIT;":
            self.last_commit_status = status
        return status


class _AfterCommit:
    """Callbacks waiting for one request transaction. `open` turns False when it ends, so a task
    spawned during the request (which inherits this context) runs its callbacks at once later."""

    __slots__ = ("callbacks", "open")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.open = True


_pending: ContextVar[_AfterCommit | None] = ContextVar("spooled_after_commit", default=None)


async def probe_tenant_role(pool: asyncpg.Pool) -> str | None:
    """`spooled_tenant` when the login role may assume it and it is subject to RLS, else None
    (then isolation is application-level only and a warning says how to enable it)."""
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('role', $1, true)", TENANT_ROLE)
                bypass = await conn.fetchval(
                    "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user"
                )
        except asyncpg.PostgresError as exc:
            log.warning(
                "row-level security not enforced: the database login role cannot assume "
                f"'{TENANT_ROLE}'. Create it before migrating (CREATE ROLE {TENANT_ROLE} "
                f"NOLOGIN; GRANT {TENANT_ROLE} TO <login role>) or migrate with a role that has "
                "CREATEROLE.",
                error=type(exc).__name__,
            )
            return None
    if bypass:
        log.warning(f"row-level security not enforced: role '{TENANT_ROLE}' bypasses RLS")
        return None
    return TENANT_ROLE


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_FINGERPRINT = re.compile(r"^[0-9a-f]{32}$")
KEY_CHANGED = "SPK01"  # SQLSTATE of spooled_check_key (migration 0008)
KeyCheck = tuple[str, str | None]  # (api key id, fingerprint of the cached row)
# Generic plans for the rest of the transaction (begin_bound, db/onetrip.py).
GENERIC_PLANS = "set_config('plan_cache_mode', 'force_generic_plan', true)"


def begin_bound(org_id: str, role: str | None,
                key_check: KeyCheck | Sequence[KeyCheck] | None = None, *,
                generic_plans: bool = False) -> str:
    """`BEGIN`, the tenant binding and (for keys authenticated from the cache) the keys'
    validity checks as one simple-protocol query: one round trip instead of three.

    `key_check` is one `(key_id, fingerprint)` or several (a coalesced batch of requests made
    with different keys, jobs/coalesce.py); a fingerprint None (a JWT) is not checked.
    Simple protocol takes no bind parameters, so the values are placed in the text, but only
    our own identifiers: the organization and key ids (UUIDs from our tables) must match
    `[A-Za-z0-9_-]{1,64}`, the fingerprint 32 hex digits, the role is the constant; anything
    else raises ValueError. `spooled_check_key` raises SQLSTATE SPK01 when a key changed.

    `generic_plans` sets `plan_cache_mode = force_generic_plan` for the transaction: the
    array statements of the group commit (ACK_JOBS, INSERT_JOBS_MANY) estimate their generic
    plan (`unnest` of an unknown array) costlier than the custom one, so PostgreSQL planned
    them again on every execution — ~1 ms of planning per single complete, measured with
    pg_stat_statements — although the generic plan is the same index nested loop.
    """
    if not _SAFE_ID.match(org_id) or (role is not None and role != TENANT_ROLE):
        raise ValueError("refusing to bind an unexpected organization id or role")
    parts = [f"set_config('app.current_org_id', '{org_id}', true)"]
    if role is not None:
        parts.insert(0, f"set_config('role', '{TENANT_ROLE}', true)")
    checks: Sequence[KeyCheck] = ()
    if key_check is not None:
        checks = [key_check] if isinstance(key_check[0], str) else key_check  # type: ignore[list-item,assignment]
    for key_id, fingerprint in checks:
        if fingerprint is None:
            continue
        if not _SAFE_ID.match(key_id) or not _FINGERPRINT.match(fingerprint):
            raise ValueError("refusing to check an unexpected key id or fingerprint")
        parts.append(f"spooled_check_key('{key_id}', '{fingerprint}')")
    if generic_plans:
        parts.append(GENERIC_PLANS)
    return f"BEGIN; SELECT {', '.join(parts)};"


async def bind_tenant(conn: asyncpg.Connection, org_id: str, role: str | None) -> None:
    """Bind the current transaction to `org_id` (and switch to the tenant role when available).

    Must run inside a transaction: both settings are transaction-local.
    """
    if role is not None:
        await conn.execute(BIND_TENANT, role, org_id)
    else:
        await conn.execute(BIND_ORG_ONLY, org_id)


def open_after_commit() -> Token[_AfterCommit | None]:
    """Start collecting deferred callbacks for the current request transaction."""
    return _pending.set(_AfterCommit())


def close_after_commit(token: Token[_AfterCommit | None], committed: bool) -> None:
    """Run (after a commit) or drop (after a rollback) the callbacks collected since `token`."""
    pending = _pending.get()
    _pending.reset(token)
    if pending is None:
        return
    pending.open = False
    if not committed:
        return
    for callback in pending.callbacks:
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - a side effect must never fail the request
            log.warning("after-commit callback failed", error=str(exc))


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current request transaction commits (now, outside one)."""
    pending = _pending.get()
    if pending is None or not pending.open:
        callback()
    else:
        pending.callbacks.append(callback)
