"""Apply the Alembic revisions (raw SQL) to a database. Synchronous: call before the event loop runs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlalchemy_url(dsn: str) -> str:
    """`postgres://…` or `postgresql://…` → `postgresql+asyncpg://…` for SQLAlchemy."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgres:// or postgresql://")


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


def upgrade_to_head(dsn: str) -> None:
    """Apply every pending revision. Raises on SQL errors (nothing half-applied: one txn each)."""
    command.upgrade(alembic_config(dsn), "head")


def current_revision(dsn: str) -> str | None:
    """The revision the database is at (None when unmigrated)."""
    import asyncio

    import asyncpg

    async def read() -> str | None:
        conn = await asyncpg.connect(dsn)
        try:
            exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
            return await conn.fetchval("SELECT version_num FROM alembic_version") if exists else None
        finally:
            await conn.close()

    return asyncio.run(read())
