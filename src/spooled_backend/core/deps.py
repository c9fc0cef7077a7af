"""FastAPI dependencies: app state, a pooled connection, the authenticated caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from spooled_backend.auth.service import authenticate_api_key
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import Unauthorized
from spooled_backend.core.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.services
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection for the whole request (auth + work share it)."""
    state = get_state(request)
    async with state.pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(get_conn)]


def bearer_token(request: Request) -> str:
    """The `Authorization: Bearer <value>` credential (CONTRACT §2); 401 when absent."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Missing Authorization header")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return value.strip()


async def require_auth(request: Request, conn: Conn) -> AuthContext:
    """Authenticate the caller's API key (CONTRACT §4.1). JWTs are handled by the auth module."""
    token = bearer_token(request)
    state = get_state(request)
    jwt_auth = getattr(request.app.state, "jwt_authenticator", None)
    if token.startswith("eyJ") and jwt_auth is not None:
        auth: AuthContext = await jwt_auth(request, conn, token)
    else:
        auth = await authenticate_api_key(conn, token, state.key_cache)
    request.state.auth = auth
    return auth


Auth = Annotated[AuthContext, Depends(require_auth)]
