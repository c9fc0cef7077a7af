"""Resolve the database for `serve`/`migrate`: DATABASE_URL, or an embedded server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.db.embedded import EmbeddedPostgres

EMBEDDED_DATABASE = "spooled"


@dataclass
class Database:
    url: str
    migrate_url: str
    embedded: EmbeddedPostgres | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


async def ensure_database(admin_dsn: str, name: str) -> None:
    """CREATE DATABASE `name` when missing (name is a constant identifier, not user input)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def open_database(settings: Settings) -> Database:
    """Use DATABASE_URL when set; otherwise start the embedded PostgreSQL kept in
    `SPOOLED_DATA_DIR/postgres` (created on first start, persistent across restarts)."""
    if settings.database_url:
        return Database(settings.database_url, settings.database_direct_url or settings.database_url)
    embedded = EmbeddedPostgres(settings.spooled_data_dir / "postgres")
    embedded.start()
    try:
        asyncio.run(ensure_database(embedded.dsn("postgres"), EMBEDDED_DATABASE))
    except BaseException:  # incl. SystemExit from a SIGTERM handler: never leave it running
        embedded.stop()
        raise
    url = embedded.dsn(EMBEDDED_DATABASE)
    return Database(url, url, embedded)
