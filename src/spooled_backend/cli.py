"""`spooled-backend serve | migrate` (typer). Flags default from the same environment variables."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Annotated

import asyncpg
import structlog
import typer
import uvicorn
from pydantic import ValidationError

from spooled_backend.config import ConfigError, Settings
from spooled_backend.core.httpserver import AnnouncingServer, CappedHttpToolsProtocol, bound_addresses
from spooled_backend.db.bootstrap import Database, connection_problem, describe_dsn, open_database
from spooled_backend.db.datadir import DataDirInUse
from spooled_backend.db.migrate import upgrade_to_head
from spooled_backend.observability.logging import configure_logging

app = typer.Typer(help="Spooled backend: a self-hostable job queue and webhook service.")

from spooled_backend.operator import commands as operator_commands  # noqa: E402

operator_commands.register(app)  # doctor, orgs, keys, queues, jobs, dlq (operator/)
log = structlog.get_logger("spooled_backend")


def _settings() -> Settings:
    try:
        settings = Settings()
        _ = settings.effective_jwt_secret
    except ValidationError as exc:
        # one line per bad variable, not pydantic's dump (deployment guide: clear start errors)
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
            message = err["msg"].removeprefix("Value error, ")
            typer.echo(f"Error: invalid {name}={err.get('input')!r}: {message}", err=True)
        raise typer.Exit(code=2) from None
    except (ConfigError, ValueError) as exc:
        typer.echo(f"Error: configuration: {exc}", err=True)
        raise typer.Exit(code=2) from None
    configure_logging(settings.json_logs, settings.rust_log)
    if settings.jwt_secret is None or settings.effective_jwt_secret != settings.jwt_secret:
        log.warning("JWT_SECRET is unset or weak; using a generated secret (development only)")
    return settings


def _open(settings: Settings) -> Database:
    """The database for this command, reachable, or a one/two-line error and exit 1."""
    try:
        db = open_database(settings)
    except DataDirInUse as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except subprocess.CalledProcessError as exc:
        typer.echo(f"Error: failed to start embedded PostgreSQL: {exc}", err=True)
        raise typer.Exit(code=1) from None
    for url in dict.fromkeys((db.url, db.migrate_url)):
        problem = asyncio.run(connection_problem(url))
        if problem is not None:
            db.stop()
            typer.echo(f"Error: Failed to connect to database at {describe_dsn(url)}", err=True)
            typer.echo(f"  cause: {problem}", err=True)
            raise typer.Exit(code=1)
    return db


async def _bootstrap(settings: Settings, db: Database) -> None:
    from spooled_backend.organizations.service import bootstrap_default_organization

    conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        from spooled_backend.db.pool import _init_connection

        await _init_connection(conn)
        created = await bootstrap_default_organization(conn, settings)
    finally:
        await conn.close()
    if created is None:
        return
    key = created["api_key"]["key"]
    port = settings.port
    typer.echo(
        "\nCreated organization 'default' (enterprise plan). Its API key, shown once:\n"
        f"  {key}\n"
        f"Try: curl -H 'Authorization: Bearer {key}' http://localhost:{port}/api/v1/jobs\n"
    )
    if db.embedded is not None:
        path = settings.spooled_data_dir / "initial-api-key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        typer.echo(f"The key is also saved in {path} (mode 0600).\n")


def _start_metrics_server(settings: Settings) -> str | None:
    """Start the METRICS_PORT listener; its bound `http://host:port/metrics`, or None."""
    from prometheus_client import start_http_server

    from spooled_backend.observability.metrics import exposition_registry

    if settings.metrics_port <= 0 or settings.metrics_token:
        return None  # with a token, /metrics on the main port is the only (authenticated) one
    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.host, registry=exposition_registry()
        )
    except OSError as exc:
        log.warning("metrics port unavailable", port=settings.metrics_port, error=str(exc))
        return None
    [address] = bound_addresses([server.socket])
    return f"{address}/metrics"


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT during migrations or bootstrap: unwind so `finally` stops the database."""
    raise SystemExit(0)


def _after_server_signal(signum: int, frame: object) -> None:
    """uvicorn re-raises the signal that stopped it once it has shut down; this no-op turns
    that into a normal return so `finally` stops the embedded PostgreSQL and we exit 0."""


def _install_signal_handlers(handler: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)  # type: ignore[arg-type]


def _share_with_workers(settings: Settings, db: Database, no_loops: bool) -> None:
    """What the worker processes (`app.app_from_env`) must see exactly as this process does:
    the resolved database (embedded or not), the JWT secret (a generated development secret
    would differ per process), whether loops run, the settings overridden by flags."""
    os.environ["DATABASE_URL"] = db.url
    os.environ["JWT_SECRET"] = settings.effective_jwt_secret
    os.environ["HOST"], os.environ["PORT"] = settings.host, str(settings.port)
    os.environ["SPOOLED_RUN_LOOPS"] = "0" if no_loops else "1"


def _serve_workers(settings: Settings, db: Database, no_loops: bool, processes: int) -> None:
    """`serve --workers N`: N uvicorn processes building the app from the environment."""
    from spooled_backend.observability import metrics

    _share_with_workers(settings, db, no_loops)
    metrics.prepare_multiprocess()  # before the workers start: /metrics sums them
    _start_metrics_server(settings)
    _install_signal_handlers(_after_server_signal)
    uvicorn.run(
        "spooled_backend.app:app_from_env", factory=True, workers=processes,
        host=settings.host, port=settings.port, loop="uvloop", http=CappedHttpToolsProtocol,
        log_level="warning", access_log=False, timeout_graceful_shutdown=10,
    )


def _run_server(extra: dict[str, str | None], application: object, **options: object) -> None:
    """`uvicorn.run` with the announcing server (one line with the bound addresses)."""
    config = uvicorn.Config(application, **options)  # type: ignore[arg-type]
    server = AnnouncingServer(config, extra)
    server.run()
    if not server.started:
        raise typer.Exit(code=1)  # e.g. the port is taken: uvicorn has said so


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (PORT)")] = None,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Skip pending migrations")] = False,
    no_loops: Annotated[bool, typer.Option("--no-loops", help="Do not run background loops")] = False,
    workers: Annotated[
        int | None, typer.Option(help="Server processes (WEB_CONCURRENCY, default 1)")
    ] = None,
) -> None:
    """Run the REST API (embedded PostgreSQL when DATABASE_URL is unset)."""
    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    db = _open(settings)
    # Only now: a SystemExit raised while initdb/pg_ctl run would kill them half-way.
    _install_signal_handlers(_stop_on_signal)
    try:
        if not no_migrate:
            upgrade_to_head(db.migrate_url)
        asyncio.run(_bootstrap(settings, db))
        processes = max(1, workers or settings.web_concurrency)
        if processes > 1:
            _serve_workers(settings, db, no_loops, processes)
            return
        metrics_address = _start_metrics_server(settings)
        from spooled_backend.app import create_app, tune_gc

        application = create_app(settings, db.url, run_loops=not no_loops)
        tune_gc()
        _install_signal_handlers(_after_server_signal)
        _run_server(
            {"metrics": metrics_address},
            application,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http=CappedHttpToolsProtocol,  # 431 past 64 KiB of request head
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        db.stop()


@app.command()
def migrate() -> None:
    """Apply pending migrations (DATABASE_DIRECT_URL when set) and exit."""
    settings = _settings()
    db = _open(settings)
    try:
        upgrade_to_head(db.migrate_url)
        typer.echo("Migrations applied.")
    finally:
        db.stop()


if __name__ == "__main__":
    sys.exit(app())
