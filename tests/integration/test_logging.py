"""Logs: JSON_LOGS=true gives one JSON object per line; request id and organization id on every
line logged during a request; the deployment guide's troubleshooting message `Invalid API key`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from spooled_backend.observability.logging import build_processors, foreign_formatter, parse_level
from tests.conftest import Api
from tests.integration.test_secrets_logging import _uncache_loggers


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    _uncache_loggers()
    structlog.configure(
        processors=build_processors(json_logs=True),
        logger_factory=structlog.PrintLoggerFactory(buffer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        _uncache_loggers()


def _records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_request_lines_carry_request_and_organization_id(
    api: Api, tenant: dict[str, Any], json_lines: io.StringIO
) -> None:
    resp = await api.client.post("/api/v1/jobs", json={"queue_name": "logq", "payload": {}},
                                 headers={**tenant["headers"], "X-Request-Id": "req-log-1"})
    assert resp.status_code == 201
    bad = await api.client.get("/api/v1/jobs", headers={"Authorization": "Bearer sp_test_" + "x" * 40,
                                                        "X-Request-Id": "req-log-2"})
    assert bad.status_code == 401 and bad.json()["message"] == "Invalid API key"
    records = _records(json_lines)
    first = [r for r in records if r.get("request_id") == "req-log-1"]
    assert [r["event"] for r in first] == ["request"]
    assert first[0]["organization_id"] == tenant["org_id"]
    assert first[0]["level"] == "info" and first[0]["status"] == 201
    second = [r for r in records if r.get("request_id") == "req-log-2"]
    assert [r["event"] for r in second] == ["Invalid API key", "request"]
    assert second[0]["level"] == "warning" and second[0]["reason"] == "unknown"
    assert "sp_test_xxxx" not in json_lines.getvalue()
    # nothing leaks into lines logged after the request
    structlog.get_logger("after").info("later")
    assert "request_id" not in _records(json_lines)[-1]


def test_foreign_records_are_json_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(foreign_formatter(json_logs=True))
    logger = logging.getLogger("test.foreign")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("uvicorn says %s", "hi")
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "uvicorn says hi" and record["level"] == "warning"


@pytest.mark.parametrize("spec,level", [
    ("info", logging.INFO), ("debug", logging.DEBUG), ("WARN", logging.WARNING),
    ("spooled_backend=debug,warn", logging.WARNING), ("spooled_backend=debug", logging.DEBUG),
    ("", logging.INFO), ("nonsense", logging.INFO), ("error", logging.ERROR),
])
def test_level_from_rust_log(spec: str, level: int) -> None:
    assert parse_level(spec) == level
