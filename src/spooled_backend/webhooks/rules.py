"""Pure webhook rules: event names, formats, retry schedule, queue names of ingested events."""

from __future__ import annotations

import re

# CONTRACT §10.1, including the events only SDK 1.6 knows.
EVENTS = (
    "job.created",
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
    "job.deadlettered",
    "job.retried",
    "queue.paused",
    "queue.resumed",
    "worker.registered",
    "worker.deregistered",
    "schedule.triggered",
    "workflow.completed",
    "workflow.failed",
)
FORMATS = ("json", "slack", "discord", "teams")
DELIVERY_STATUSES = ("pending", "success", "failed")
INBOUND_STATUSES = ("created", "duplicate", "rejected")

AUTO_DISABLE_AFTER_FAILURES = 20  # consecutive failed deliveries (CONTRACT §10.3)
MANUAL_RETRY_MAX_ATTEMPTS = 10
RESPONSE_BODY_CHARS = 1024  # stored per attempt
RESPONSE_READ_BYTES = 64 * 1024  # read from a receiver, then the connection is dropped


def backoff_secs(attempts_done: int) -> float:
    """Delay before the next attempt once `attempts_done` (≥1) attempts failed:
    `2^min(n-1, 5)` s → 1, 2, 4, 8, 16, 32, 32 … (CONTRACT §10.3)."""
    n = max(attempts_done, 1)
    return float(2 ** min(n - 1, 5))


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def provider_queue(provider: str, event: str) -> str:
    """`github-<event>` / `stripe-<type with . → ->` (CONTRACT §7.13): characters outside
    `[A-Za-z0-9_-]` become `-`, the event part is cut to 64 characters."""
    cleaned = _UNSAFE.sub("-", event)[:64] or "unknown"
    return f"{provider}-{cleaned}"
