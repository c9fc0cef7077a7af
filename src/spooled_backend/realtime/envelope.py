"""Realtime event envelopes (CONTRACT §14.1): `{"type": "<Variant>", "data": {...}}`.

One `Event` is built per state change and serialized once; every transport (in-process, Redis,
PostgreSQL NOTIFY) and every subscriber (WebSocket frame, SSE `data:`) shares that text.
An envelope is capped at `MAX_ENVELOPE_BYTES` (PostgreSQL NOTIFY payloads must stay under
8,000 bytes, and one rule for every transport keeps events identical with and without Redis):
a larger `result` is dropped (`result_truncated: true`), a longer `error` is cut
(`error_truncated: true`), and anything still too large becomes a reference event carrying only
the ids (`truncated: true`; clients fetch the job).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; the transport adds ~60 bytes.
MAX_ENVELOPE_BYTES = 7600
MAX_ERROR_CHARS = 2000

# Variant → SSE event name (CONTRACT §14.1 table).
SSE_NAMES: dict[str, str] = {
    "JobStatusChange": "job.status",
    "JobCreated": "job.created",
    "JobCompleted": "job.completed",
    "JobFailed": "job.failed",
    "QueueStats": "queue.stats",
    "WorkerHeartbeat": "worker.heartbeat",
    "WorkerRegistered": "worker.registered",
    "WorkerDeregistered": "worker.deregistered",
    "SystemHealth": "system.health",
    "Ping": "ping",
    "Error": "error",
}

# Every spelling a client may use in an `events=` filter, lower-cased → the variant:
# the SSE names, the SDK names (`job.status_changed`) and the variants themselves.
_ALIASES: dict[str, str] = {}
for _variant, _dotted in SSE_NAMES.items():
    _ALIASES[_variant.lower()] = _variant
    _ALIASES[_dotted] = _variant
_ALIASES["job.status_changed"] = "JobStatusChange"

# Connection-level events: delivered whatever the queue/job/event filters say.
CONTROL = frozenset({"Ping", "Error"})
# Worker events without a queue: never shown to queue-scoped keys (CONTRACT §14.1).
UNSCOPED_WORKER_EVENTS = frozenset({"WorkerHeartbeat", "WorkerDeregistered"})


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def variant_of(name: str) -> str | None:
    """The variant an `events=` entry names (any spelling, any case), or None if unknown."""
    return _ALIASES.get(name.strip().lower())


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(slots=True)
class Event:
    """One envelope for one organization. `text` is the envelope JSON sent to clients."""

    org_id: str
    type: str
    data: dict[str, Any]
    text: str = ""
    queue_name: str | None = field(default=None)
    job_id: str | None = field(default=None)

    @property
    def sse_name(self) -> str:
        return SSE_NAMES.get(self.type, "message")


def build_event(org_id: str, kind: str, data: dict[str, Any]) -> Event:
    """Stamp `timestamp`, trim to the size cap, serialize once."""
    data.setdefault("timestamp", now_rfc3339())
    text = _dumps({"type": kind, "data": data})
    if len(text.encode()) > MAX_ENVELOPE_BYTES:
        data, text = _trimmed(kind, data)
    return Event(org_id, kind, data, text, data.get("queue_name"), data.get("job_id"))


def _trimmed(kind: str, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    slim = dict(data)
    if "result" in slim:
        slim.pop("result")
        slim["result_truncated"] = True
    error = slim.get("error")
    if isinstance(error, str) and len(error) > MAX_ERROR_CHARS:
        slim["error"] = error[:MAX_ERROR_CHARS]
        slim["error_truncated"] = True
    text = _dumps({"type": kind, "data": slim})
    if len(text.encode()) <= MAX_ENVELOPE_BYTES:
        return slim, text
    keep = ("job_id", "queue_name", "worker_id", "old_status", "new_status", "status", "timestamp")
    ref = {k: slim[k] for k in keep if k in slim and len(str(slim[k])) <= 256}
    ref["truncated"] = True
    return ref, _dumps({"type": kind, "data": ref})


def parse_event(org_id: str, text: str) -> Event | None:
    """An envelope received from another process (None when malformed)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    data = value.get("data")
    if not isinstance(data, dict):
        return None
    queue = data.get("queue_name")
    job = data.get("job_id")
    return Event(
        org_id, value["type"], data, _dumps({"type": value["type"], "data": data}),
        queue if isinstance(queue, str) else None, job if isinstance(job, str) else None,
    )


def control_event(kind: str, **data: Any) -> Event:
    """A connection-level event (Ping, Error, SystemHealth) not tied to an organization."""
    return build_event("", kind, dict(data))
