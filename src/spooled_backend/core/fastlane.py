"""The hot routes without FastAPI's router and dependency injection (issue 8).

The drain's profile (README, performance) spent ~35 % of the server's samples in FastAPI for
each claim/complete: route matching (~60 routes scanned before `/jobs/{id}/complete`) and
`solve_dependencies` (State, Conn, Auth as generator dependencies in an AsyncExitStack). The
routes listed in `jobs.routes.HOT_ROUTES` are still FastAPI routes (they are in the OpenAPI
document and their functions are unchanged), but the edge middleware calls them directly:

    match the path with one dict lookup → bearer credential → authenticate (cached key: no
    query) → per-tenant rate limit → BEGIN + tenant binding in one round trip → the route
    function → COMMIT → response

Endpoints that take no `conn` (create, complete, fail) skip the request transaction: they hand
their item to a group commit (jobs/coalesce.py), which applies concurrent calls of the
organization in one transaction with the same binding and key checks.

Same rules and order as the dependency chain in core/deps.py (401 before body validation, 429
before anything is written, after-commit events, the aborted-COMMIT check), same error bodies
(core/handlers.py). Three round trips per request with a cached key instead of five; the cached
key is checked in the first one (`spooled_check_key`, auth/service.py), so a revoked key is
refused at once on every replica.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import asyncpg
import structlog
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from spooled_backend.core import handlers, tenancy
from spooled_backend.core.context import AuthContext
from spooled_backend.core.deps import (
    authenticate,
    bearer_token,
    cached_api_key,
    state_of,
    transaction_on,
)
from spooled_backend.core.errors import AccessDenied, SpooledError
from spooled_backend.core.state import AppState
from spooled_backend.ratelimit.tenant import enforce_tenant

Endpoint = Callable[..., Awaitable[Any]]
PREFIX = "/api/v1/jobs"


class FastLane:
    """`POST /api/v1/jobs…` routes served directly; `match` returns None for everything else."""

    def __init__(self, routes: dict[tuple[str, str], Endpoint]) -> None:
        self.exact: dict[tuple[str, str], Endpoint] = {}
        self.by_action: dict[tuple[str, str], Endpoint] = {}  # /jobs/{job_id}/<action>
        self.params: dict[Endpoint, frozenset[str]] = {}
        # What FastAPI's router leaves in scope["route"]: metrics and tracing label by template.
        self.templates: dict[Endpoint, SimpleNamespace] = {}
        for (method, path), endpoint in routes.items():
            self.templates[endpoint] = SimpleNamespace(path=path)
            if path.startswith(PREFIX + "/{job_id}/"):
                self.by_action[(method, path.rsplit("/", 1)[1])] = endpoint
            else:
                self.exact[(method, path)] = endpoint
            self.params[endpoint] = frozenset(inspect.signature(endpoint).parameters)
        self.unbound = frozenset(e for e, names in self.params.items() if "conn" not in names)

    def match(self, scope: Scope) -> tuple[Endpoint, str | None] | None:
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        method: str = scope["method"]
        endpoint = self.exact.get((method, path))
        if endpoint is not None:
            return endpoint, None
        parts = path.split("/")  # "", api, v1, jobs, {id}, action
        if len(parts) == 6 and parts[4]:
            endpoint = self.by_action.get((method, parts[5]))
            if endpoint is not None:
                return endpoint, parts[4]
        return None

    async def serve(self, endpoint: Endpoint, job_id: str | None, scope: Scope,
                    receive: Receive, send: Send) -> None:
        scope["route"] = self.templates[endpoint]
        request = Request(scope, receive)
        try:
            response = await self._run(endpoint, job_id, request)
        except SpooledError as exc:
            response = await handlers.spooled_error(request, exc)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the same last resort as the app's handler
            response = await handlers.unexpected_error(request, exc)  # type: ignore[arg-type]
        await response(scope, receive, send)  # type: ignore[operator]

    async def _run(self, endpoint: Endpoint, job_id: str | None, request: Request) -> Any:
        """Authenticate once, then run the endpoint in its transaction; an endpoint that leaves
        `request.state.claim_wait` (a claim with `wait_ms` that found nothing) is run again
        after that wait, in a new transaction, with no connection held meanwhile. It runs
        again when the wait ends either way, woken or timed out: the answer at the deadline is
        the queue's state then, so a job whose wake-up was missed (due while the activation
        sweep held its row) is not left behind for the whole wait (newcomer's trial)."""
        state = state_of(request)
        credential = bearer_token(request)
        auth: AuthContext | None = None
        while True:
            response, auth = await self._attempt(endpoint, job_id, request, state, credential, auth)
            wait = getattr(request.state, "claim_wait", None)
            if wait is None:
                return response
            request.state.claim_wait = None
            await wait()

    async def _attempt(self, endpoint: Endpoint, job_id: str | None, request: Request,
                       state: AppState, credential: str,
                       auth: AuthContext | None) -> tuple[Any, AuthContext]:
        if auth is None:
            auth = await self._admit(state, request, credential)
        try:
            return await self._once(endpoint, job_id, request, state, auth), auth
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) != tenancy.KEY_CHANGED:
                raise
        except AccessDenied:
            # Refused on the cached row before any database round trip (a queue outside the
            # key's scope): the scope may have been widened a moment ago on another replica,
            # its NOTIFY not here yet. Refuse only once the row is known to be current.
            if auth.fingerprint is None or await _key_current(state, auth):
                raise
        # The cached key row is stale (revoked, expired, scope or plan changed): read it
        # again (401 when it is no longer valid) and run with the fresh one.
        state.key_cache.rows.forget(key_id=auth.api_key_id)
        async with state.pool.acquire() as conn:
            auth = await authenticate(state, conn, credential)
        request.state.auth = auth
        return await self._once(endpoint, job_id, request, state, auth), auth

    async def _admit(self, state: AppState, request: Request, credential: str) -> AuthContext:
        """Authenticate (a cached key costs no query and no connection) and apply the
        per-tenant rate limit (429 before anything runs)."""
        auth = cached_api_key(state, credential)
        if auth is None:
            async with state.pool.acquire() as conn:
                auth = await authenticate(state, conn, credential)
        if state.rate_limiter is not None:
            decision = await enforce_tenant(state.rate_limiter, state.settings, auth)
            if decision is not None:
                request.state.rate_limit = decision
        request.state.auth = auth
        structlog.contextvars.bind_contextvars(organization_id=auth.organization_id)
        return auth

    async def _once(self, endpoint: Endpoint, job_id: str | None, request: Request,
                    state: AppState, auth: AuthContext) -> Any:
        """The endpoint in its request transaction; an endpoint that takes no `conn` does its
        own database work (the coalesced acks, jobs/coalesce.py) and runs without one."""
        if endpoint in self.unbound:
            return await self._call(endpoint, job_id, request, state, None, auth)
        bind = (auth.organization_id, state.tenant_role)
        key_check = (auth.api_key_id, auth.fingerprint)
        async with state.pool.acquire() as conn, transaction_on(conn, state, request, bind, key_check):
            return await self._call(endpoint, job_id, request, state, conn, auth)

    async def _call(self, endpoint: Endpoint, job_id: str | None, request: Request,
                    state: AppState, conn: Any, auth: AuthContext) -> Any:
        wanted = self.params[endpoint]
        kwargs: dict[str, Any] = {}
        if "request" in wanted:
            kwargs["request"] = request
        if "state" in wanted:
            kwargs["state"] = state
        if "conn" in wanted:
            kwargs["conn"] = conn
        if "auth" in wanted:
            kwargs["auth"] = auth
        if "job_id" in wanted:
            kwargs["job_id"] = job_id
        return await endpoint(**kwargs)


async def _key_current(state: AppState, auth: AuthContext) -> bool:
    """Whether the key row `auth` was built from is unchanged (`spooled_check_key`)."""
    async with state.pool.acquire() as conn:
        try:
            await conn.execute("SELECT spooled_check_key($1, $2)", auth.api_key_id,
                               auth.fingerprint)
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == tenancy.KEY_CHANGED:
                return False
            raise
    return True
