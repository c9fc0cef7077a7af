"""Wire models of the dashboard document (CONTRACT §7.15); documentation only."""

from __future__ import annotations

from datetime import datetime

from spooled_backend.core.openapi import Out


class DashboardSystem(Out):
    version: str
    uptime_seconds: int
    started_at: datetime
    database_status: str
    cache_status: str
    environment: str


class DashboardJobs(Out):
    total: int
    pending: int
    processing: int
    completed_24h: int
    failed_24h: int
    deadletter: int
    avg_wait_time_ms: float | None = None
    avg_processing_time_ms: float | None = None


class DashboardQueue(Out):
    name: str
    pending: int
    processing: int
    paused: bool


class DashboardWorkers(Out):
    total: int
    healthy: int
    unhealthy: int


class RecentActivity(Out):
    jobs_created_1h: int
    jobs_completed_1h: int
    jobs_failed_1h: int


class Dashboard(Out):
    system: DashboardSystem
    jobs: DashboardJobs
    queues: list[DashboardQueue]
    workers: DashboardWorkers
    recent_activity: RecentActivity
