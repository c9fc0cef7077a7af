"""Shared field rules: queue names, ids, timestamps, webhook URLs (CONTRACT §7.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from spooled_backend.core.errors import NotFound, ValidationFailed
from spooled_backend.core.validators import (
    UtcDatetime,
    check_queue_name,
    parse_uuid_id,
    valid_queue_name,
    webhook_url_problem,
)


@pytest.mark.parametrize("name", ["q", "emails.high", "a_b-c.d", "x" * 100, "キュー", "Q9"])
def test_queue_name_ok(name: str) -> None:
    assert check_queue_name(name) == name


@pytest.mark.parametrize("name", ["", ".a", "-a", "a b", "a/b", "x" * 101, "a\x00", "\ud800", "a*"])
def test_queue_name_rejected(name: str) -> None:
    with pytest.raises(ValidationFailed):
        valid_queue_name(name)


def test_parse_uuid_id() -> None:
    assert parse_uuid_id("6F9619FF-8B86-4011-B42D-00C04FC964FF") == "6f9619ff-8b86-4011-b42d-00c04fc964ff"
    for bad in ("", "x", "1", "6f9619ff8b86", "\x00"):
        with pytest.raises(NotFound):
            parse_uuid_id(bad)


class _At(BaseModel):
    at: UtcDatetime


def test_utc_datetime() -> None:
    got = _At.model_validate({"at": "2026-01-01T02:00:00+02:00"}).at
    assert got == datetime(2026, 1, 1, tzinfo=UTC) and got.utcoffset() == timedelta(0)
    assert _At.model_validate({"at": "2026-01-01T00:00:00Z"}).at.tzinfo is not None
    for bad in ("2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "x"):
        with pytest.raises(ValidationError):
            _At.model_validate({"at": bad})
    with pytest.raises(ValidationError):
        _At.model_validate({"at": datetime(2026, 1, 1)})
    east = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert _At.model_validate({"at": east}).at == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "https://hooks.example.com:8443/a?b=c", "https://8.8.8.8/x",
            "https://[2001:4860:4860::8888]/x", "HTTPS://Example.COM/"],
)
def test_webhook_url_ok(url: str) -> None:
    assert webhook_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "ftp://example.com/", "example.com", "https://", "https:///path",
     "https://127.0.0.1/", "https://127.1/", "https://2130706433/", "https://0x7f000001/",
     "https://0/", "https://10.0.0.1/", "https://172.16.0.1/", "https://192.168.1.1/",
     "https://100.64.0.1/", "https://169.254.169.254/", "https://[::1]/", "https://[fe80::1]/",
     "https://[fd00::1]/", "https://[::ffff:10.0.0.1]/", "https://224.0.0.1/", "https://localhost/",
     "https://api.localhost/", "https://metadata.google.internal/", "https://printer.local/",
     "https://example.com:99999/", "https://exa mple.com/"],
)
def test_webhook_url_rejected(url: str) -> None:
    assert webhook_url_problem(url) is not None
