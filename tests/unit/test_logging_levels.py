"""Third-party loggers that would print secrets at INFO stay quiet (found by a newcomer's trial:
every webhook delivery's full URL — the secret of a Slack/Discord/Teams webhook — was logged)."""

from __future__ import annotations

import io
import logging
import sys

import structlog

from spooled_backend.observability.logging import configure_logging


def test_httpx_request_lines_with_webhook_urls_are_not_logged(monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging(json_logs=True, level="info")
        secret_url = "https://hooks.slack.com/services/T000/B000/SLACKSECRETTOKEN123"
        logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', secret_url)
        logging.getLogger("httpcore.connection").info("connect_tcp.started host=%s", secret_url)
        logging.getLogger("httpx").warning("httpx warning still shown")
        logging.getLogger("spooled_backend.test").info("our own info line")
        text = out.getvalue()
        assert "SLACKSECRETTOKEN123" not in text
        assert "httpx warning still shown" in text and "our own info line" in text
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        structlog.reset_defaults()
