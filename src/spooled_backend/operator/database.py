"""How operator commands reach the database and name an organization."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import NotFound
from spooled_backend.db.bootstrap import EMBEDDED_DATABASE, open_database
from spooled_backend.db.pool import _init_connection, asyncpg_dsn

T = TypeVar("T")
ORG_BY_ID_OR_SLUG = """
SELECT id, plan_tier, custom_limits FROM organizations
WHERE (id = $1 OR slug = $1) AND plan_tier <> 'deleted'
"""


def postmaster_pid_file(settings: Settings) -> Path:
    return settings.spooled_data_dir / "postgres" / "pgdata" / "postmaster.pid"


def running_postmaster(settings: Settings) -> tuple[int, int] | None:
    """(pid, port) of the embedded PostgreSQL a running server started, or None."""
    path = postmaster_pid_file(settings)
    try:
        lines = path.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the embedded PostgreSQL's system user
    return pid, port


@contextmanager
def database_dsn(settings: Settings) -> Iterator[str]:
    """DATABASE_DIRECT_URL or DATABASE_URL; else the running embedded PostgreSQL; else the
    embedded one started for this command (and stopped after)."""
    if settings.database_url:
        yield asyncpg_dsn(settings.database_direct_url or settings.database_url)
        return
    running = running_postmaster(settings)
    if running is not None:
        yield f"postgresql://postgres@127.0.0.1:{running[1]}/{EMBEDDED_DATABASE}"
        return
    db = open_database(settings)
    try:
        yield asyncpg_dsn(db.url)
    finally:
        db.stop()


@asynccontextmanager
async def connect(dsn: str, timeout: float = 10.0) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn, timeout=timeout, statement_cache_size=0)
    await _init_connection(conn)
    try:
        yield conn
    finally:
        await conn.close()


_session_dsn: str | None = None


@contextmanager
def session(settings: Settings) -> Iterator[str]:
    """One database for a whole command (an embedded PostgreSQL starts once, not per batch)."""
    global _session_dsn
    if _session_dsn is not None:
        yield _session_dsn
        return
    with database_dsn(settings) as dsn:
        _session_dsn = dsn
        try:
            yield dsn
        finally:
            _session_dsn = None


def run(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work(conn)` in one transaction on the operator's database."""

    async def main(dsn: str) -> T:
        async with connect(dsn) as conn, conn.transaction():
            return await work(conn)

    with session(settings) as dsn:
        return asyncio.run(main(dsn))


async def operator_auth(conn: asyncpg.Connection, org: str) -> AuthContext:
    """An unrestricted AuthContext for organization `org` (id or slug); NotFound otherwise."""
    row: Any = await conn.fetchrow(ORG_BY_ID_OR_SLUG, org)
    if row is None:
        raise NotFound(f"Organization '{org}' not found")
    return AuthContext(organization_id=row["id"], api_key_id="operator-cli", queues=("*",),
                       plan_tier=row["plan_tier"], custom_limits=row["custom_limits"])
