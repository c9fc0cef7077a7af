"""FastAPI dependencies: app state, the request's connection (one transaction), the caller.

`Conn` is one pooled connection holding one transaction for the whole request, committed when
the route returns (before the response is sent: `scope="function"`) and rolled back when it
raises, so an error response never leaves partial writes behind. Until `Auth` identifies the
organization the transaction runs as the login role (the RLS bypass path: public and admin
routes); `Auth` then binds it to the tenant (core/tenancy.py): `SET LOCAL ROLE spooled_tenant`
and `app.current_org_id`, so row-level security backs up every query's organization filter.

Services that catch a database error must do so inside `async with conn.transaction()` (a
savepoint): an error outside one aborts the whole request transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
import structlog
from fastapi import Depends, Request

from spooled_backend.auth import tokens
from spooled_backend.auth.service import authenticate_api_key, cached_key_context
from spooled_backend.auth.sessions import authenticate_access_token
from spooled_backend.core import tenancy
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import InternalError, Unauthorized
from spooled_backend.core.state import AppState
from spooled_backend.ratelimit.tenant import enforce_tenant

log = structlog.get_logger(__name__)

MAX_BEARER_CHARS = tokens.MAX_TOKEN_CHARS


def state_of(request: Request) -> AppState:
    """The process-wide services (created in the app lifespan)."""
    state: AppState = request.app.state.services
    return state


async def get_state(request: Request) -> AppState:
    """Dependency form of `state_of`; `async` because FastAPI runs plain `def` dependencies in a
    thread pool."""
    return state_of(request)


State = Annotated[AppState, Depends(get_state)]


@asynccontextmanager
async def request_transaction(
    state: AppState, request: Request, bind: tuple[str, str | None] | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection and one transaction for the whole request (module docstring).

    Side effects registered with `tenancy.after_commit` (event publishing) run after the commit
    and are dropped on rollback. `bind=(org_id, role)` opens the transaction already bound to
    the tenant, in the same round trip as BEGIN (the hot routes, core/fastlane.py).
    """
    async with state.pool.acquire() as conn, transaction_on(conn, state, request, bind):
        yield conn


@asynccontextmanager
async def transaction_on(
    conn: asyncpg.Connection, state: AppState, request: Request | None,
    bind: tuple[str, str | None] | None = None,
    key_check: tenancy.KeyCheck | Sequence[tenancy.KeyCheck] | None = None,
    *, generic_plans: bool = False,
) -> AsyncIterator[asyncpg.Connection]:
    """`request_transaction` on a connection the caller already holds; `key_check` adds
    `spooled_check_key` to the bound BEGIN (tenancy.begin_bound), `generic_plans` its plan
    cache mode. `request` None: a transaction for several requests (jobs/coalesce.py)."""
    forget = getattr(conn, "forget_commit_status", None)
    if forget is not None:
        forget()
    if bind is None:
        transaction = conn.transaction()
        await transaction.start()
    else:
        transaction = None
        try:
            await conn.execute(tenancy.begin_bound(bind[0], bind[1], key_check,
                                                   generic_plans=generic_plans))
        except BaseException:
            if conn.is_in_transaction():
                try:
                    await conn.execute("ROLLBACK;")
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    pass
            raise
    pending = tenancy.open_after_commit()
    committed = False
    try:
        yield conn
    except BaseException:
        if not conn.is_closed():
            try:
                if transaction is not None:
                    await transaction.rollback()
                else:
                    await conn.execute("ROLLBACK;")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                pass  # the pool resets or discards the connection on release
        raise
    else:
        if transaction is not None:
            await transaction.commit()
        else:
            await conn.execute("COMMIT;")
        if getattr(conn, "last_commit_status", None) == "ROLLBACK":
            log.error("request transaction was aborted by a swallowed database error",
                      path=request.url.path if request is not None else None)
            raise InternalError("The request's transaction was aborted by an earlier error")
        committed = True
    finally:
        tenancy.close_after_commit(pending, committed)


async def get_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """Dependency form of `request_transaction`."""
    async with request_transaction(state_of(request), request) as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(get_conn, scope="function")]


def bearer_token(request: Request) -> str:
    """The `Authorization: Bearer <value>` credential (CONTRACT §2); 401 when absent.

    Oversized and non-ASCII values are refused here, before any database or crypto work.
    """
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Missing Authorization header")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    if len(value) > MAX_BEARER_CHARS or not value.isascii():
        raise Unauthorized("Invalid credentials")
    return value


async def authenticate(
    state: AppState, conn: asyncpg.Connection, credential: str
) -> AuthContext:
    """API key or access JWT (CONTRACT §4.1/§4.2: a value starting with `eyJ` is a JWT), read
    from the database (`cached_api_key` is the cache-only lookup of the fast lane).

    Also usable by routes with their own credential sources (realtime `?token=`). Raises
    Unauthorized.
    """
    if tokens.looks_like_jwt(credential):
        return await authenticate_access_token(
            conn, state.settings.effective_jwt_secret, state.revocations, credential
        )
    return await authenticate_api_key(conn, credential, state.key_cache)


def cached_api_key(state: AppState, credential: str) -> AuthContext | None:
    """The AuthContext of an API key found in the process's key-row cache, without a query;
    None for a miss or a JWT (then `authenticate` with a connection). Only for callers that run
    `spooled_check_key` in their transaction (core/fastlane.py, jobs/coalesce.py)."""
    if tokens.looks_like_jwt(credential):
        return None
    return cached_key_context(credential, state.key_cache)


async def admit(state: AppState, conn: asyncpg.Connection, request: Request, auth: AuthContext) -> None:
    """After authentication: bind the transaction to the tenant (RLS) and count the request
    against the organization / API-key limits (429 before the route runs)."""
    await tenancy.bind_tenant(conn, auth.organization_id, state.tenant_role)
    if state.rate_limiter is not None:
        decision = await enforce_tenant(state.rate_limiter, state.settings, auth)
        if decision is not None:
            request.state.rate_limit = decision


async def require_auth(request: Request, conn: Conn) -> AuthContext:
    """The authenticated caller of a protected route (API key or access JWT)."""
    state = state_of(request)
    auth = await authenticate(state, conn, bearer_token(request))
    await admit(state, conn, request, auth)
    request.state.auth = auth
    structlog.contextvars.bind_contextvars(organization_id=auth.organization_id)
    return auth


Auth = Annotated[AuthContext, Depends(require_auth)]


async def get_read_conn(request: Request, conn: Conn, auth: Auth) -> AsyncIterator[asyncpg.Connection]:
    """A connection for read-only routes (lists, stats, dashboard): the request's own when no
    DATABASE_READ_URL is set; otherwise one from the replica pool, in a READ ONLY transaction
    bound to the caller's tenant like the primary's. Authentication stays on the primary (it
    writes `last_used`); replicas may lag by their replication delay."""
    state = state_of(request)
    if state.read_pool is None:
        yield conn
        return
    async with state.read_pool.acquire() as replica, replica.transaction(readonly=True):
        await tenancy.bind_tenant(replica, auth.organization_id, state.tenant_role)
        yield replica


ReadConn = Annotated[asyncpg.Connection, Depends(get_read_conn, scope="function")]
