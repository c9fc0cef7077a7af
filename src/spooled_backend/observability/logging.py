"""structlog setup: console output by default, one JSON object per line with JSON_LOGS=true.

Every line logged while a request runs carries its `request_id` and, once the caller is
authenticated, its `organization_id` (bound as structlog context variables by the request
middleware and the auth dependency). Records of other libraries (uvicorn, asyncpg, alembic)
go through the same renderer, so JSON_LOGS output is JSON throughout. The level comes from
RUST_LOG (e.g. `info`, `debug`, `spooled_backend=debug,warn`: the bare level wins).
"""

from __future__ import annotations

import logging
import sys

import structlog

from spooled_backend.observability.redaction import RedactingFilter, redact_event

LEVELS = ("critical", "error", "warning", "warn", "info", "debug", "trace")


def build_processors(json_logs: bool) -> list[structlog.typing.Processor]:
    """The processor chain; `redact_event` runs after tracebacks are rendered (no secrets)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_event,
        renderer,
    ]


def parse_level(spec: str | None) -> int:
    """A logging level from a RUST_LOG-style spec; INFO when none is recognisable."""
    chosen = None
    for part in (spec or "").split(","):
        part = part.strip().lower()
        target, _, level = part.rpartition("=")
        if level in LEVELS and (not target or chosen is None):
            chosen = level
            if not target:
                break
    name = {"warn": "warning", "trace": "debug", None: "info"}.get(chosen, chosen)
    return int(getattr(logging, str(name).upper(), logging.INFO))


def foreign_formatter(json_logs: bool) -> logging.Formatter:
    """Renders stdlib log records with structlog's processors (JSON lines with JSON_LOGS)."""
    chain = build_processors(json_logs)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=chain[:-1],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, chain[-1]],
    )


def configure_logging(json_logs: bool, level: str = "info") -> None:
    log_level = parse_level(level)
    structlog.configure(
        processors=build_processors(json_logs),
        wrapper_class=structlog.make_filtering_bound_logger(log_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.setLevel(log_level)
    handler = next((h for h in root.handlers if getattr(h, "_spooled", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler._spooled = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(foreign_formatter(json_logs))
    # Alembic narrates every migration step at INFO ("Context impl PostgresqlImpl." …).
    logging.getLogger("alembic").setLevel(max(log_level, logging.WARNING))
    # httpx logs every request's full URL at INFO; for Slack/Discord/Teams webhooks the URL is the
    # secret, so the webhook sender's client logs only warnings and errors.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(log_level, logging.WARNING))
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
    # uvicorn's loggers keep their own handlers (its dictConfig runs after this and replaces
    # handlers, not logger filters): redact on the loggers themselves, so a WebSocket or SSE
    # URL with `?token=` / `?api_key=` never reaches a log line whatever uvicorn prints.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
