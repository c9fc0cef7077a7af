"""What the job service tells the outside world: realtime envelopes (CONTRACT §14.1) and
webhook events (§10.1). The sink is implemented in `realtime/`; services only call it."""

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
