"""One typed Settings object, read from the environment and an optional `.env` file.

Names and defaults follow the deployment guide and CONTRACT §17 (and our decisions in §20).
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_JWT_SECRET = "development-secret-change-in-production"
WEAK_SECRET_WORDS = (
    "development",
    "secret",
    "password",
    "change-me",
    "your-secret",
    "jwt-secret",
    "test",
    "demo",
)


class ConfigError(ValueError):
    """Raised when the configuration cannot be used (e.g. a weak JWT secret in production)."""


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("spooled-backend", appauthor=False))


class Settings(BaseSettings):
    """Service configuration. Durations carry their unit in the name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Server
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = 9090
    grpc_port: int = 50051
    rust_env: str = "development"  # name kept for drop-in compatibility (CONTRACT §17, D1)
    external_url: str | None = None
    metrics_token: str | None = None
    cors_allowed_origins: str = (
        "https://spooled.cloud,https://www.spooled.cloud,https://dashboard.spooled.cloud"
    )
    enable_hsts: bool = False
    json_logs: bool = False
    rust_log: str = "info"

    # Database
    database_url: str | None = None
    # Server processes of `serve` (uvicorn workers; WEB_CONCURRENCY as uvicorn names it).
    web_concurrency: int = 1
    database_direct_url: str | None = None
    database_read_url: str | None = None  # optional read replica: list, stats, dashboard reads
    database_max_connections: int = 25
    database_min_connections: int = 5
    database_acquire_timeout_secs: float = 30.0
    database_statement_cache: bool = True  # turn off behind PgBouncer in transaction mode
    spooled_data_dir: Path = Field(default_factory=_default_data_dir)

    # Redis
    redis_url: str | None = None
    redis_pool_size: int = 10

    # Security
    jwt_secret: str | None = None
    jwt_expiration_hours: int = Field(default=24, ge=1, le=8760)
    admin_api_key: str | None = None
    registration_mode: Literal["open", "closed", "invite"] = "open"
    email_signup_enabled: bool = True
    spooled_bootstrap_org: bool = False
    default_plan_tier: str = "free"
    plan_limits_enabled: bool = True
    api_key_bcrypt_cost: int = Field(default=12, ge=4, le=16)

    # Rate limits
    rate_limit_requests_per_second: int = 100
    rate_limit_burst_size: int = 200
    rate_limit_fail_closed: bool = False
    trusted_client_ip_header: str | None = None
    trusted_proxy_hops: int = 0
    # Per-request timeout before a response starts (CONTRACT §2: 30 s; 408 REQUEST_TIMEOUT).
    request_timeout_secs: float = Field(default=30.0, ge=0)

    # Workers and queues
    worker_heartbeat_interval_secs: int = 10
    worker_lease_duration_secs: int = 30
    worker_max_concurrency: int = 5
    worker_fallback_poll_interval_secs: int = 5
    # Liveness by missed heartbeats (CONTRACT §9.2): healthy → degraded after this many missed
    # heartbeat intervals, → offline (jobs recovered) once the last heartbeat is older than
    # WORKER_OFFLINE_AFTER_SECS.
    worker_degraded_after_missed_heartbeats: int = Field(default=3, ge=1)
    worker_offline_after_secs: float = Field(default=120.0, gt=0)
    queue_default_max_retries: int = 3
    queue_default_timeout_secs: int = 300
    queue_max_payload_size_bytes: int = 1_048_576

    # Outgoing webhooks
    outgoing_webhook_max_attempts: int = 5
    outgoing_webhook_max_concurrent_deliveries: int = 64

    # Billing and email
    stripe_secret_key: str | None = None
    stripe_billing_webhook_secret: str | None = None
    stripe_starter_price_id: str | None = None
    stripe_pro_price_id: str | None = None
    stripe_billing_portal_config_id: str | None = None
    # Stripe API base URL override (stripe-mock or a test double); unset = Stripe itself.
    stripe_api_base: str | None = None
    email_provider: str = "console"
    email_api_key: str | None = None
    email_from_address: str = "noreply@spooled.cloud"
    email_from_name: str = "Spooled Cloud"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None

    # Observability
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "spooled-backend"
    metrics_organization_label: bool = False  # `organization` label on queue metrics
    metrics_max_queue_labels: int = Field(default=1000, ge=1)  # then queue="_other"

    # Background loop intervals (seconds); tests shorten them.
    scheduler_activate_interval_secs: float = 5.0
    scheduler_lease_recovery_interval_secs: float = 10.0
    scheduler_metrics_interval_secs: float = 15.0
    scheduler_maintenance_interval_secs: float = 300.0
    scheduler_worker_liveness_interval_secs: float = 15.0

    # Realtime (CONTRACT §14): caps per organization and process, per-client queue, timers.
    realtime_max_connections_per_org: int = Field(default=100, ge=1)  # WebSockets; SSE apart
    realtime_subscriber_queue_size: int = Field(default=1024, ge=1)  # events; then dropped
    realtime_auth_recheck_secs: float = Field(default=30.0, gt=0)
    realtime_ws_ping_secs: float = Field(default=30.0, gt=0)
    realtime_sse_keepalive_secs: float = Field(default=15.0, gt=0)
    realtime_sse_max_life_secs: float = Field(default=1800.0, gt=0)
    realtime_job_poll_secs: float = Field(default=2.0, gt=0)
    realtime_queue_stats_secs: float = Field(default=5.0, gt=0)
    realtime_health_secs: float = Field(default=10.0, gt=0)

    @field_validator("rust_env")
    @classmethod
    def _normalise_env(cls, value: str) -> str:
        value = (value or "development").strip().lower()
        if value in ("dev", "development", ""):
            return "development"
        if value in ("prod", "production"):
            return "production"
        if value == "staging":
            return "staging"
        raise ValueError("RUST_ENV must be development, staging or production")

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.database_min_connections > self.database_max_connections:
            raise ValueError("DATABASE_MIN_CONNECTIONS must be <= DATABASE_MAX_CONNECTIONS")
        return self

    @property
    def is_production(self) -> bool:
        return self.rust_env == "production"

    @property
    def is_strict_env(self) -> bool:
        """Production and staging enforce the JWT secret rules (CONTRACT §4.2)."""
        return self.rust_env in ("production", "staging")

    @cached_property
    def effective_jwt_secret(self) -> str:
        """The HS256 secret; in development a random one is generated when unset or a placeholder.

        Raises ConfigError in production/staging when the secret is missing, short or weak.
        """
        problem = jwt_secret_problem(self.jwt_secret)
        if problem is None:
            assert self.jwt_secret is not None
            return self.jwt_secret
        if self.is_strict_env:
            raise ConfigError(f"JWT_SECRET {problem}; set a strong random secret (>=32 chars)")
        return secrets.token_urlsafe(48)

    @property
    def api_key_prefix(self) -> str:
        """New keys: `sk_live_` in production, `sk_test_` otherwise (CONTRACT §21 R2); `sp_`
        keys issued before keep authenticating (auth/keys.py KEY_PREFIXES)."""
        return "sk_live_" if self.is_production else "sk_test_"

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allowed_origins.split(",") if o.strip()]


def jwt_secret_problem(secret: str | None) -> str | None:
    """Why a JWT secret is unusable in production (None when it is fine). CONTRACT §4.2."""
    if not secret:
        return "is not set"
    if secret == PLACEHOLDER_JWT_SECRET:
        return "is the placeholder value"
    if len(secret) < 32:
        return "is shorter than 32 characters"
    if len(set(secret)) < 10:
        return "has fewer than 10 distinct characters"
    lowered = secret.lower()
    for word in WEAK_SECRET_WORDS:
        if word in lowered:
            return f"contains the weak word '{word}'"
    return None
