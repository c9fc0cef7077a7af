"""structlog setup: console output by default, JSON lines with JSON_LOGS=true."""

from __future__ import annotations

import logging

import structlog

from spooled_backend.observability.redaction import RedactingFilter, redact_event


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


def configure_logging(json_logs: bool, level: str = "info") -> None:
    log_level = getattr(logging, level.split(",")[0].strip().upper(), logging.INFO)
    structlog.configure(
        processors=build_processors(json_logs),
        wrapper_class=structlog.make_filtering_bound_logger(log_level),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=log_level, format="%(message)s")
    # Alembic narrates every migration step at INFO ("Context impl PostgresqlImpl." …).
    logging.getLogger("alembic").setLevel(max(log_level, logging.WARNING))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
