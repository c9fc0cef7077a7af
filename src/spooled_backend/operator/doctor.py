"""`spooled-backend doctor`: one ✓/✗ line per check of what `serve` needs.

Checks: configuration, database reachable (the deployment guide's `Failed to connect to
database`), migrations current, Redis (optional: `Redis unavailable, running without cache`),
ports free (PORT, METRICS_PORT, GRPC_PORT), the data directory (writable; embedded PostgreSQL
lock), clock skew against the database (|skew| ≤ MAX_SKEW_SECS).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import asyncpg

from spooled_backend.config import ConfigError, Settings
from spooled_backend.db.migrate import MIGRATIONS_DIR
from spooled_backend.operator.database import (
    connect,
    database_dsn,
    postmaster_pid_file,
    running_postmaster,
)

MAX_SKEW_SECS = 2.0
CONNECT_TIMEOUT_SECS = 5.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    return str(head)


def check_config(settings: Settings) -> Check:
    try:
        _ = settings.effective_jwt_secret
    except ConfigError as exc:
        return Check("configuration", False, str(exc))
    return Check("configuration", True, f"RUST_ENV={settings.rust_env}")


def check_ports(settings: Settings) -> list[Check]:
    out = []
    for var, port in (("PORT", settings.port), ("METRICS_PORT", settings.metrics_port),
                      ("GRPC_PORT", settings.grpc_port)):
        if port <= 0:
            out.append(Check(f"port {var}", True, "disabled"))
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((settings.host, port))
                out.append(Check(f"port {var}", True, f"{settings.host}:{port} free"))
            except OSError as exc:
                out.append(Check(f"port {var}", False,
                                 f"{settings.host}:{port} in use ({exc.strerror}); is the server "
                                 "already running? Set " + var))
    return out


def check_data_dir(settings: Settings) -> Check:
    path = settings.spooled_data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".doctor-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("data directory", False, f"{path} not writable: {exc}")
    if settings.database_url:
        return Check("data directory", True, f"{path} writable (external database)")
    pid_file = postmaster_pid_file(settings)
    running = running_postmaster(settings)
    if running is not None:
        return Check("data directory", True,
                     f"{path} locked by the running embedded PostgreSQL (pid {running[0]}, port {running[1]})")
    if pid_file.exists():
        return Check("data directory", False,
                     f"stale lock {pid_file} (no such process); `serve` clears it on start")
    return Check("data directory", True, f"{path} writable, not locked")


async def check_redis(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("redis", True, "not configured (optional: running without cache)")
    from spooled_backend.db.redis import redis_from_url

    client = redis_from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        await asyncio.wait_for(client.ping(), 3)
        return Check("redis", True, "reachable")
    except Exception as exc:  # noqa: BLE001 - any failure is the degraded mode
        return Check("redis", False, f"Redis unavailable, running without cache ({exc})")
    finally:
        await client.aclose()


async def check_database(dsn: str) -> list[Check]:
    try:
        async with connect(dsn, timeout=CONNECT_TIMEOUT_SECS) as conn:
            version = await conn.fetchval("SHOW server_version")
            out = [Check("database", True, f"reachable (PostgreSQL {version})")]
            exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
            current = await conn.fetchval("SELECT version_num FROM alembic_version") if exists else None
            head = head_revision()
            if current == head:
                out.append(Check("migrations", True, f"current ({head})"))
            else:
                out.append(Check("migrations", False, f"at {current or 'none'}, head is {head}: "
                                 "run `spooled-backend migrate`"))
            before = time.time()
            db_now: datetime = await conn.fetchval("SELECT now()")
            after = time.time()
            local = datetime.fromtimestamp((before + after) / 2, UTC)
            skew = (db_now - local).total_seconds()
            out.append(Check("clock skew", abs(skew) <= MAX_SKEW_SECS,
                             f"{skew:+.3f} s against the database (limit ±{MAX_SKEW_SECS:g} s)"))
            return out
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return [Check("database", False, f"Failed to connect to database: {exc}"),
                Check("migrations", False, "unknown (database unreachable)"),
                Check("clock skew", False, "unknown (database unreachable)")]


def run_doctor(settings: Settings) -> list[Check]:
    checks = [check_config(settings)]
    checks += check_ports(settings)  # before the embedded PostgreSQL may start
    checks.append(check_data_dir(settings))
    try:
        with database_dsn(settings) as dsn:
            checks += asyncio.run(check_database(dsn))
    except Exception as exc:  # noqa: BLE001 - e.g. the embedded PostgreSQL does not start
        checks.append(Check("database", False, f"Failed to connect to database: {exc}"))
    checks.append(asyncio.run(check_redis(settings)))
    return checks


def as_dicts(checks: list[Check]) -> list[dict[str, object]]:
    return [asdict(c) for c in checks]
