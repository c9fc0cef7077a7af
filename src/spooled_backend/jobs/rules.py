"""Pure job rules (unit-tested): retry backoff, ordering whitelist, status parsing."""

from __future__ import annotations

from spooled_backend.core.errors import ValidationFailed

STATUSES = ("pending", "scheduled", "processing", "completed", "failed", "deadletter", "cancelled")
ORDER_COLUMNS = (
    "created_at",
    "updated_at",
    "scheduled_at",
    "completed_at",
    "priority",
    "status",
    "queue_name",
    "retry_count",
)
MAX_BACKOFF_SECS = 60


def retry_delay_secs(retry_count_before: int) -> int:
    """Seconds before the next attempt: min(2^min(n, 6), 60) for n = retry_count before the
    increment → 1, 2, 4, 8, 16, 32, 60, 60… (CONTRACT §8.3; B0's minutes are not copied)."""
    n = max(0, retry_count_before)
    return int(min(2 ** min(n, 6), MAX_BACKOFF_SECS))


def will_retry(retry_count: int, max_retries: int, allow_retry: bool = True) -> bool:
    """`max_retries` counts retries after the first attempt (0 → first failure dead-letters)."""
    return allow_retry and retry_count < max_retries


def parse_statuses(raw: str | None) -> list[str] | None:
    """`status=failed,deadletter` → ['failed', 'deadletter']; unknown values → 400."""
    if raw is None or not raw.strip():
        return None
    values = [s.strip().lower() for s in raw.split(",") if s.strip()]
    bad = [s for s in values if s not in STATUSES]
    if bad:
        raise ValidationFailed(
            "status", f"unknown status '{bad[0]}'; expected one of {', '.join(STATUSES)}", "enum"
        )
    return values


def parse_order(order_by: str | None, order_dir: str | None) -> tuple[str, str]:
    """Whitelisted ORDER BY column and direction (CONTRACT §5); unknown values → 400."""
    column = (order_by or "created_at").strip().lower()
    if column not in ORDER_COLUMNS:
        raise ValidationFailed(
            "order_by", f"must be one of {', '.join(ORDER_COLUMNS)}", "enum"
        )
    direction = (order_dir or "desc").strip().lower()
    if direction not in ("asc", "desc"):
        raise ValidationFailed("order_dir", "must be asc or desc", "enum")
    return column, direction.upper()
