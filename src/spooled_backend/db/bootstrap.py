"""Resolve the database for `serve`/`migrate`: DATABASE_URL, or an embedded server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from spooled_backend.config import Settings
from spooled_backend.db.datadir import DataDirLock, lock_data_dir
from spooled_backend.db.embedded import EmbeddedPostgres

EMBEDDED_DATABASE = "spooled"


@dataclass
class Database:
    url: str
    migrate_url: str
    embedded: EmbeddedPostgres | None = None
    lock: DataDirLock | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        if self.lock is not None:
            self.lock.release()  # after the database is down, never before


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
    # One owner per data directory (raises DataDirInUse); with the lock held, a leftover
    # postmaster.pid is an orphan of a killed server and the start below stops it.
    lock = lock_data_dir(settings.spooled_data_dir)
    embedded = EmbeddedPostgres(settings.spooled_data_dir / "postgres")
    try:
        embedded.start()
        asyncio.run(ensure_database(embedded.dsn("postgres"), EMBEDDED_DATABASE))
    except BaseException:  # incl. SystemExit from a SIGTERM handler: never leave it running
        embedded.stop()
        lock.release()
        raise
    url = embedded.dsn(EMBEDDED_DATABASE)
    return Database(url, url, embedded, lock)


CONNECT_TIMEOUT_SECS = 10.0


def describe_dsn(url: str) -> str:
    """`host:port/database` of a PostgreSQL URL (no user, no password) for error lines."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "<unparseable DATABASE_URL>"
    database = parts.path.lstrip("/") or "(default)"
    return f"{host}:{port} (database {database!r})"


async def connection_problem(url: str) -> str | None:
    """None when PostgreSQL at `url` accepts a connection; else the cause on one line."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECS)
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_SECS:.0f} s"
    except Exception as exc:  # noqa: BLE001 - reported to the operator, then exit
        text = " ".join(str(exc).split()) or "no details"
        return f"{type(exc).__name__}: {text}"
    await conn.close()
    return None
