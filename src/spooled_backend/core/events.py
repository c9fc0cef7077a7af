"""What the services tell the outside world: realtime envelopes (CONTRACT §14.1) and
webhook events (§10.1). The sink is implemented in `realtime/bus.py`; services only call it.

Calls are cheap and never fail: inside a request the event leaves after the transaction commits
(dropped on rollback); in a background loop after the loop's transaction commits. Adding an
event: a method here, a no-op in `NoEvents`, and its implementation in `realtime/bus.py`
(`self.publish(org_id, "<Variant>", {...})`).
"""

from __future__ import annotations

from typing import Any, Protocol


class Events(Protocol):
    def job_created(
        self, org_id: str, job_id: str, queue_name: str, priority: int, status: str
    ) -> None: ...

    def job_started(self, org_id: str, job_id: str, queue_name: str, worker_id: str) -> None: ...

    def job_completed(
        self, org_id: str, job_id: str, queue_name: str, duration_ms: int, result: Any
    ) -> None: ...

    def job_failed(
        self, org_id: str, job_id: str, queue_name: str, error: str, retry_count: int, status: str
    ) -> None: ...

    def job_status(
        self, org_id: str, job_id: str, queue_name: str, old_status: str, new_status: str
    ) -> None: ...

    def worker_registered(self, org_id: str, worker_id: str, queue_name: str) -> None: ...

    def worker_heartbeat(
        self, org_id: str, worker_id: str, status: str, current_job_id: str | None = None
    ) -> None: ...

    def worker_deregistered(self, org_id: str, worker_id: str) -> None: ...

    def queue_stats(
        self, org_id: str, queue_name: str, pending: int, processing: int, completed: int,
        failed: int,
    ) -> None: ...

    # Dependencies and workflows (jobs/dependencies.py): called from the transaction that
    # changed the parent job; implementations publish after commit like the others.
    def job_released(self, org_id: str, job_id: str, queue_name: str) -> None:
        """A waiting job's dependencies are now met: it is claimable (status unchanged)."""
        ...

    def workflow_completed(
        self, org_id: str, workflow_id: str, name: str, total_jobs: int, completed_jobs: int,
        failed_jobs: int,
    ) -> None:
        """Every job of the workflow completed (webhook `workflow.completed`)."""
        ...

    def workflow_failed(
        self, org_id: str, workflow_id: str, name: str, total_jobs: int, completed_jobs: int,
        failed_jobs: int,
    ) -> None:
        """Nothing of the workflow is left to run and a job failed, was dead-lettered or
        cancelled (webhook `workflow.failed`)."""
        ...

    def schedule_triggered(
        self, org_id: str, schedule_id: str, job_id: str, queue_name: str
    ) -> None:
        """A schedule enqueued a job (cron fire or manual trigger): webhook `schedule.triggered`
        (CONTRACT §10.1) with `{schedule_id, job_id, queue_name}`. Not a §14.1 envelope."""
        ...


class NoEvents:
    """A sink that drops everything (tests of pure SQL, maintenance tools)."""

    def job_created(self, *args: Any) -> None:
        pass

    def job_started(self, *args: Any) -> None:
        pass

    def job_completed(self, *args: Any) -> None:
        pass

    def job_failed(self, *args: Any) -> None:
        pass

    def job_status(self, *args: Any) -> None:
        pass

    def worker_registered(self, *args: Any) -> None:
        pass

    def worker_heartbeat(self, *args: Any, **kwargs: Any) -> None:
        pass

    def worker_deregistered(self, *args: Any) -> None:
        pass

    def queue_stats(self, *args: Any) -> None:
        pass

    def job_released(self, *args: Any) -> None:
        pass

    def workflow_completed(self, *args: Any) -> None:
        pass

    def workflow_failed(self, *args: Any) -> None:
        pass

    def schedule_triggered(self, *args: Any) -> None:
        pass
