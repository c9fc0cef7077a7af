"""`GET /dashboard` (CONTRACT §6 #107, §7.15)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter

from spooled_backend.core.deps import Auth, ReadConn, State
from spooled_backend.core.openapi import doc
from spooled_backend.core.responses import JSONBody, json_response
from spooled_backend.core.state import AppState
from spooled_backend.dashboard import service
from spooled_backend.dashboard.schemas import Dashboard

router = APIRouter(prefix="/api/v1", tags=["dashboard"])

CACHE_CHECK_TIMEOUT_SECS = 1.0


def _cache_probe(state: AppState) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        """True when Redis answers PING within a second, or when Redis is not configured."""
        if state.redis is None:
            return True
        try:
            async with asyncio.timeout(CACHE_CHECK_TIMEOUT_SECS):
                return bool(await state.redis.ping())
        except Exception:  # noqa: BLE001 - any failure means "unhealthy", never a 5xx
            return False

    return probe


@router.get("/dashboard", **doc(Dashboard))
async def dashboard(state: State, conn: ReadConn, auth: Auth) -> JSONBody:
    """The dashboard document, restricted to the caller's organization and queue scope."""
    body = await service.dashboard(
        conn,
        auth,
        version=state.version,
        started_at=state.started_at,
        environment=state.settings.rust_env,
        cache_ok=_cache_probe(state),
    )
    return json_response(body)
