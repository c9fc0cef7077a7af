"""The hot routes without FastAPI's router and dependency injection (issue 8).

The drain's profile (README, performance) spent ~35 % of the server's samples in FastAPI for
each claim/complete: route matching (~60 routes scanned before `/jobs/{id}/complete`) and
`solve_dependencies` (State, Conn, Auth as generator dependencies in an AsyncExitStack). The
routes listed in `jobs.routes.HOT_ROUTES` are still FastAPI routes (they are in the OpenAPI
document and their functions are unchanged), but the edge middleware calls them directly:

    match the path with one dict lookup → bearer credential → authenticate (cached key: no
    query) → per-tenant rate limit → BEGIN + tenant binding in one round trip → the route
    function → COMMIT → response

Same rules and order as the dependency chain in core/deps.py (401 before body validation, 429
before anything is written, after-commit events, the aborted-COMMIT check), same error bodies
(core/handlers.py). Three round trips per request with a cached key instead of five.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from spooled_backend.core import handlers
from spooled_backend.core.deps import authenticate, bearer_token, state_of, transaction_on
from spooled_backend.core.errors import SpooledError
from spooled_backend.ratelimit.tenant import enforce_tenant

Endpoint = Callable[..., Awaitable[Any]]
PREFIX = "/api/v1/jobs"


class FastLane:
    """`POST /api/v1/jobs…` routes served directly; `match` returns None for everything else."""

    def __init__(self, routes: dict[tuple[str, str], Endpoint]) -> None:
        self.exact: dict[tuple[str, str], Endpoint] = {}
        self.by_action: dict[tuple[str, str], Endpoint] = {}  # /jobs/{job_id}/<action>
        self.params: dict[Endpoint, frozenset[str]] = {}
        for (method, path), endpoint in routes.items():
            if path.startswith(PREFIX + "/{job_id}/"):
                self.by_action[(method, path.rsplit("/", 1)[1])] = endpoint
            else:
                self.exact[(method, path)] = endpoint
            self.params[endpoint] = frozenset(inspect.signature(endpoint).parameters)

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
        request = Request(scope, receive)
        try:
            response = await self._run(endpoint, job_id, request)
        except SpooledError as exc:
            response = await handlers.spooled_error(request, exc)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the same last resort as the app's handler
            response = await handlers.unexpected_error(request, exc)  # type: ignore[arg-type]
        await response(scope, receive, send)  # type: ignore[operator]

    async def _run(self, endpoint: Endpoint, job_id: str | None, request: Request) -> Any:
        state = state_of(request)
        credential = bearer_token(request)
        async with state.pool.acquire() as conn:
            # A cached key costs no query; a miss reads the key row outside the transaction.
            auth = await authenticate(state, conn, credential)
            if state.rate_limiter is not None:
                decision = await enforce_tenant(state.rate_limiter, state.settings, auth)
                if decision is not None:
                    request.state.rate_limit = decision
            request.state.auth = auth
            bind = (auth.organization_id, state.tenant_role)
            async with transaction_on(conn, state, request, bind):
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
