"""A throwaway embedded PostgreSQL with one migrated database, for the small benchmark scripts."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.migrate import upgrade_to_head


@asynccontextmanager
async def migrated_database(name: str = "bench") -> AsyncIterator[str]:
    """Start a fast (fsync off) embedded PostgreSQL in a temporary directory, create database
    `name` migrated to head, and yield its DSN; the server is stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="spooled-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", fast_unsafe=True)
        server.start()
        try:
            setup = await asyncpg.connect(server.dsn())
            await setup.execute(f"CREATE DATABASE {name}")
            await setup.close()
            dsn = server.dsn(name)
            await asyncio.to_thread(upgrade_to_head, dsn)
            yield dsn
        finally:
            server.stop()
