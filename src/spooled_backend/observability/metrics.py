"""Prometheus metrics with the exact names of the deployment guide and CONTRACT §16 (unlabelled)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_ENQUEUED = Counter(
    "spooled_jobs_enqueued", "Jobs created (idempotent hits excluded)", registry=REGISTRY
)
JOBS_COMPLETED = Counter("spooled_jobs_completed", "Job completions", registry=REGISTRY)
JOBS_FAILED = Counter("spooled_jobs_failed", "Job failure reports", registry=REGISTRY)
JOBS_RETRIED = Counter("spooled_jobs_retried", "Manual and DLQ retries", registry=REGISTRY)
JOBS_DEADLETTERED = Counter(
    "spooled_jobs_deadlettered", "Jobs moved to the dead-letter queue", registry=REGISTRY
)
JOBS_PENDING = Gauge("spooled_jobs_pending", "Pending jobs", registry=REGISTRY)
JOBS_PROCESSING = Gauge("spooled_jobs_processing", "Processing jobs", registry=REGISTRY)
JOB_MAX_AGE = Gauge(
    "spooled_job_max_age_seconds", "Age of the oldest pending job in seconds", registry=REGISTRY
)
JOB_DURATION = Histogram(
    "spooled_job_duration_seconds",
    "Claim-to-completion time in seconds",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
API_REQUESTS = Counter("spooled_api_requests", "HTTP requests", registry=REGISTRY)
API_REQUEST_DURATION = Histogram(
    "spooled_api_request_duration_seconds",
    "HTTP request latency in seconds",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
WORKERS_ACTIVE = Gauge("spooled_workers_active", "Registered non-offline workers", registry=REGISTRY)
WORKERS_HEALTHY = Gauge("spooled_workers_healthy", "Healthy workers", registry=REGISTRY)
DB_CONNECTIONS_ACTIVE = Gauge(
    "spooled_database_connections_active", "Pool connections in use", registry=REGISTRY
)
REDIS_OPERATIONS = Counter("spooled_redis_operations", "Redis commands", registry=REGISTRY)
