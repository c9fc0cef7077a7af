"""asyncpg pool with jsonb codecs."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.jsonvalue import dumps
from spooled_backend.core.tenancy import TrackingConnection


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=dumps, decoder=json.loads, schema="pg_catalog")


def asyncpg_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too."""
    return dsn.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_pool(dsn: str, settings: Settings, **overrides: Any) -> asyncpg.Pool:
    """Pool of `DATABASE_MIN_CONNECTIONS`..`DATABASE_MAX_CONNECTIONS` connections.

    The statement cache is turned off when `DATABASE_STATEMENT_CACHE=false` (PgBouncer in
    transaction mode cannot keep prepared statements).
    """
    options: dict[str, Any] = {
        "min_size": settings.database_min_connections,
        "max_size": settings.database_max_connections,
        "init": _init_connection,
        "command_timeout": 60,
        "server_settings": {"application_name": "spooled-backend"},
    }
    options["connection_class"] = TrackingConnection  # COMMIT outcome check (core/tenancy.py)
    if not settings.database_statement_cache:
        options["statement_cache_size"] = 0
    options.update(overrides)
    return await asyncpg.create_pool(asyncpg_dsn(dsn), **options)
