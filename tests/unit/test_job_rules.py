"""Pure job rules: retry backoff, will_retry, status and order parsing (CONTRACT §5, §8.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spooled_backend.core.errors import ValidationFailed
from spooled_backend.jobs.rules import (
    MAX_BACKOFF_SECS,
    ORDER_COLUMNS,
    STATUSES,
    parse_order,
    parse_statuses,
    retry_delay_secs,
    will_retry,
)


def test_backoff_sequence_is_seconds_doubling_then_capped() -> None:
    assert [retry_delay_secs(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_backoff_is_bounded_and_monotonic(n: int) -> None:
    delay = retry_delay_secs(n)
    assert 1 <= delay <= MAX_BACKOFF_SECS == 60
    assert isinstance(delay, int)
    assert retry_delay_secs(n + 1) >= delay
    if n <= 0:
        assert delay == 1
    elif n < 6:
        assert delay == 2**n
    else:
        assert delay == 60


@given(st.integers(0, 200), st.integers(0, 100), st.booleans())
def test_will_retry_counts_retries_after_first_attempt(retry_count: int, max_retries: int, allow: bool) -> None:
    assert will_retry(retry_count, max_retries, allow) == (allow and retry_count < max_retries)


def test_will_retry_edges() -> None:
    assert will_retry(0, 0) is False  # max_retries=0: the first failure dead-letters
    assert will_retry(0, 1) is True
    assert will_retry(1, 1) is False
    assert will_retry(0, 3, allow_retry=False) is False


def test_parse_statuses() -> None:
    assert parse_statuses(None) is None
    assert parse_statuses("") is None
    assert parse_statuses("  ") is None
    assert parse_statuses("pending") == ["pending"]
    assert parse_statuses("failed,deadletter") == ["failed", "deadletter"]
    assert parse_statuses(" Failed , DEADLETTER ,") == ["failed", "deadletter"]
    assert parse_statuses(",".join(STATUSES)) == list(STATUSES)


@pytest.mark.parametrize("raw", ["bogus", "pending,bogus", "running", "pending;drop", "dead letter"])
def test_parse_statuses_rejects_unknown(raw: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_statuses(raw)
    assert exc.value.status == 400 and exc.value.code == "VALIDATION_ERROR"
    assert exc.value.details[0]["field"] == "status"


@given(st.text(max_size=30))
def test_parse_order_only_ever_returns_whitelisted_sql(order_by: str) -> None:
    try:
        column, direction = parse_order(order_by, None)
    except ValidationFailed as exc:
        assert exc.details[0]["field"] == "order_by"
        return
    assert column in ORDER_COLUMNS and direction == "DESC"


def test_parse_order_defaults_and_case() -> None:
    assert parse_order(None, None) == ("created_at", "DESC")
    assert parse_order("PRIORITY", "asc") == ("priority", "ASC")
    assert parse_order(" retry_count ", " Desc ") == ("retry_count", "DESC")
    for column in ORDER_COLUMNS:
        assert parse_order(column, "asc") == (column, "ASC")


@pytest.mark.parametrize(
    ("order_by", "order_dir", "field"),
    [("payload", None, "order_by"), ("id; DROP TABLE jobs", None, "order_by"),
     ("created_at", "up", "order_dir"), ("created_at", "asc nulls first", "order_dir")],
)
def test_parse_order_rejects(order_by: str, order_dir: str | None, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_order(order_by, order_dir)
    assert exc.value.status == 400 and exc.value.details[0]["field"] == field
