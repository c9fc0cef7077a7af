"""Prometheus metrics with the exact names of the deployment guide and CONTRACT §16.

Queue-level counters and gauges carry a `queue` label and an `organization` label. The
organization value is empty ("" = no label, to Prometheus) unless `METRICS_ORGANIZATION_LABEL=true`,
since tenants × queues can be large. Label sets are bounded: at most `METRICS_MAX_QUEUE_LABELS`
distinct (organization, queue) pairs get their own series, later ones share `queue="_other"`.
HTTP requests are counted by `method`, route template (`route`, never the raw path) and status
class (`status="2xx"`).

Call sites stay one line and cheap: `JOBS_COMPLETED.inc(queue=..., organization=...)` looks the
child up in a dict (no `labels()` call per increment after the first). `inc()` without labels
still works (`queue="_unknown"`), so code written against the unlabelled names keeps running.

Multiprocess: when `PROMETHEUS_MULTIPROC_DIR` is set before the worker processes import
prometheus-client (`prepare_multiprocess`, called by `serve --workers N`), values live in mmap
files and `render()` aggregates them with prometheus-client's `MultiProcessCollector`.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
UNKNOWN_QUEUE = "_unknown"
OTHER_QUEUE = "_other"
QUEUE_LABELS = ("queue", "organization")
JOB_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
API_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
UNMATCHED_ROUTE = "unmatched"


class _Labels:
    """Process-wide label policy (set once from Settings by `configure`)."""

    organization: ClassVar[bool] = False
    max_queue_labels: ClassVar[int] = 1000
    seen: ClassVar[set[tuple[str, str]]] = set()
    lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def key(cls, queue: str | None, organization: str | None) -> tuple[str, str]:
        org = (organization or "") if cls.organization else ""
        pair = (queue or UNKNOWN_QUEUE, org)
        if pair in cls.seen:
            return pair
        with cls.lock:
            if len(cls.seen) < cls.max_queue_labels:
                cls.seen.add(pair)
                return pair
        return (OTHER_QUEUE, org)


def configure(organization_label: bool = False, max_queue_labels: int = 1000) -> None:
    """Apply `METRICS_ORGANIZATION_LABEL` / `METRICS_MAX_QUEUE_LABELS` (called by create_app)."""
    _Labels.organization = organization_label
    _Labels.max_queue_labels = max(1, max_queue_labels)


class QueueCounter:
    """A `queue`/`organization` labelled counter with cached children."""

    def __init__(self, name: str, doc: str) -> None:
        self.metric = Counter(name, doc, QUEUE_LABELS, registry=REGISTRY)
        self._children: dict[tuple[str, str], Any] = {}

    def inc(self, amount: float = 1, *, queue: str | None = None,
            organization: str | None = None) -> None:
        key = _Labels.key(queue, organization)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.metric.labels(*key)
        child.inc(amount)

    def value(self, queue: str, organization: str = "") -> float:
        """Current value of one series (tests and the CLI)."""
        return float(self.metric.labels(queue, organization)._value.get())


class QueueHistogram:
    """A `queue`/`organization` labelled histogram with cached children."""

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...]) -> None:
        self.metric = Histogram(name, doc, QUEUE_LABELS, buckets=buckets, registry=REGISTRY)
        self._children: dict[tuple[str, str], Any] = {}

    def observe(self, seconds: float, *, queue: str | None = None,
                organization: str | None = None) -> None:
        key = _Labels.key(queue, organization)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.metric.labels(*key)
        child.observe(seconds)


class QueueGauge:
    """A `queue`/`organization` labelled gauge replaced as a whole on each refresh: series of
    queues that vanished from the refresh drop to 0 (they stay bounded by the label cap)."""

    def __init__(self, name: str, doc: str, combine: Any = sum) -> None:
        self.metric = Gauge(name, doc, QUEUE_LABELS, registry=REGISTRY,
                            multiprocess_mode="mostrecent")
        self.combine = combine  # how queues folded into `_other` combine (sum, or max for ages)
        self._last: set[tuple[str, str]] = set()

    def replace(self, values: dict[tuple[str, str], float]) -> None:
        """`values` maps (queue, organization id) → value; earlier series not in it become 0."""
        merged: dict[tuple[str, str], float] = {}
        for (queue, org), value in values.items():
            key = _Labels.key(queue, org)
            merged[key] = self.combine((merged[key], value)) if key in merged else value
        for key in self._last - merged.keys():
            self.metric.labels(*key).set(0)
        for key, value in merged.items():
            self.metric.labels(*key).set(value)
        self._last = set(merged)


def _gauge(name: str, doc: str, mode: str = "mostrecent") -> Gauge:
    return Gauge(name, doc, registry=REGISTRY, multiprocess_mode=mode)  # type: ignore[arg-type]


JOBS_ENQUEUED = QueueCounter("spooled_jobs_enqueued", "Jobs created (idempotent hits excluded)")
JOBS_COMPLETED = QueueCounter("spooled_jobs_completed", "Job completions")
JOBS_FAILED = QueueCounter("spooled_jobs_failed", "Job failure reports")
JOBS_RETRIED = QueueCounter("spooled_jobs_retried", "Manual and DLQ retries")
JOBS_DEADLETTERED = QueueCounter("spooled_jobs_deadlettered", "Jobs moved to the dead-letter queue")
JOBS_PENDING = QueueGauge("spooled_jobs_pending", "Pending jobs (refreshed every 15 s)")
JOBS_PROCESSING = QueueGauge("spooled_jobs_processing", "Processing jobs")
JOB_MAX_AGE = QueueGauge(
    "spooled_job_max_age_seconds", "Age of the oldest pending job in seconds", combine=max
)
JOB_DURATION = QueueHistogram(
    "spooled_job_duration_seconds", "Claim-to-completion time in seconds", JOB_DURATION_BUCKETS
)
API_REQUESTS = Counter(
    "spooled_api_requests", "HTTP requests", ("method", "route", "status"), registry=REGISTRY
)
API_REQUEST_DURATION = Histogram(
    "spooled_api_request_duration_seconds",
    "HTTP request latency in seconds",
    ("method", "route"),
    buckets=API_DURATION_BUCKETS,
    registry=REGISTRY,
)
WORKERS_ACTIVE = _gauge("spooled_workers_active", "Registered non-offline workers")
WORKERS_HEALTHY = _gauge("spooled_workers_healthy", "Healthy workers")
DB_CONNECTIONS_ACTIVE = _gauge(
    "spooled_database_connections_active", "Pool connections in use", mode="livesum"
)
REDIS_OPERATIONS = Counter("spooled_redis_operations", "Redis commands", registry=REGISTRY)
LEGACY_ACKS = Counter(
    "spooled_legacy_ack",
    "Complete/fail/heartbeat calls without a lease_id (legacy fencing, CONTRACT §21 R1)",
    ["operation"],
    registry=REGISTRY,
)

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


_pool: Any = None
_pool_per_request = False  # multiprocess mode: the pool gauge is refreshed per request


def track_pool(pool: Any) -> None:
    """Report `spooled_database_connections_active` from this asyncpg pool (None: stop). Read at
    scrape time in one process; refreshed per request in multiprocess mode (files, not calls)."""
    global _pool, _pool_per_request
    _pool = pool
    _pool_per_request = pool is not None and multiprocess_dir() is not None
    if pool is None:
        DB_CONNECTIONS_ACTIVE.set(0)
    elif multiprocess_dir() is None:
        DB_CONNECTIONS_ACTIVE.set_function(lambda: pool.get_size() - pool.get_idle_size())


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """Count one HTTP request by method, route template and status class; time it."""
    if _pool_per_request:
        DB_CONNECTIONS_ACTIVE.set(_pool.get_size() - _pool.get_idle_size())
    key = (method if method in HTTP_METHODS else "OTHER", route or UNMATCHED_ROUTE,
           f"{status // 100}xx" if status else "5xx")
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            API_REQUESTS.labels(*key), API_REQUEST_DURATION.labels(key[0], key[1])
        )
    children[0].inc()
    children[1].observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prepare_multiprocess() -> str:
    """Before starting several server processes: a fresh PROMETHEUS_MULTIPROC_DIR (inherited by
    the children). Returns it; an operator-provided directory is emptied and reused."""
    path = multiprocess_dir()
    if path is None:
        path = tempfile.mkdtemp(prefix="spooled-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
    return path


def exposition_registry() -> CollectorRegistry:
    """The registry to expose: this process's, or all processes' in multiprocess mode."""
    if multiprocess_dir() is None:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render() -> bytes:
    """The Prometheus text exposition."""
    return generate_latest(exposition_registry())


def mark_process_dead(pid: int) -> None:
    """Drop a stopped process's live gauges (multiprocess mode only)."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)

# Realtime (realtime/): open WebSocket + SSE subscribers of this process, slow clients dropped,
# events dropped by the cross-process outbox (full or transport down).
REALTIME_CONNECTIONS = _gauge(
    "spooled_realtime_connections", "Open realtime subscribers (WebSocket and SSE)", "livesum"
)
REALTIME_SLOW_CLIENTS_DROPPED = Counter(
    "spooled_realtime_slow_clients_dropped", "Realtime clients dropped for not reading", registry=REGISTRY
)
REALTIME_EVENTS_DROPPED = Counter(
    "spooled_realtime_events_dropped", "Realtime events not sent to other processes", registry=REGISTRY
)
