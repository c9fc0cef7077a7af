"""The README flows with `SpooledWorker` against the real server (with and without Redis)."""

from __future__ import annotations

import threading
import time
from typing import Any

from spooled.client import SpooledClient
from spooled.worker import JobContext

from tests.e2e.helpers import running_worker, wait_for


def test_worker_processes_a_job_to_completed(client: SpooledClient) -> None:
    """README "Create a Job" + "Process Jobs with a Worker": the result comes back on the job."""
    result = client.jobs.create({
        "queue_name": "emails",
        "payload": {"to": "user@example.com", "subject": "Welcome!", "template": "welcome_email"},
        "priority": 5,
    })
    assert result.created is True
    job = client.jobs.get(result.id)
    assert (job.status, job.priority, job.queue_name) == ("pending", 5, "emails")
    assert job.payload["to"] == "user@example.com"

    seen: list[str] = []

    def handle_job(ctx: JobContext) -> dict[str, Any]:
        seen.append(ctx.job_id)
        return {"sent": True, "to": ctx.payload["to"]}

    with running_worker(client, "emails", handle_job, concurrency=2) as (worker, events):
        done = wait_for(lambda: client.jobs.get(result.id), lambda j: j.status == "completed",
                        timeout=20, what="job completed")
        wait_for(lambda: [e for e in events if e[0] == "job:completed"], bool, timeout=5,
                 what="job:completed event")
        registered = client.workers.get(worker.worker_id or "")
        assert registered.queue_name == "emails"
        assert registered.status == "healthy"

    assert seen == [result.id]
    assert done.result == {"sent": True, "to": "user@example.com"}
    assert done.retry_count == 0
    assert done.completed_at is not None and done.started_at is not None
    assert done.lease_id is None
    # stop() deregistered the worker.
    assert client.workers.get(registered.id).status == "offline"
    events_seen = [e.event_type for e in client.jobs.history(result.id)]
    assert events_seen[0] == "created" and "completed" in events_seen, events_seen


def test_failing_job_retries_into_dlq_and_back(client: SpooledClient) -> None:
    """max_retries=2: three attempts (backoff 1 s, 2 s) → deadletter; dlq.retry → pending with
    retry_count 0; the handler now succeeds → completed."""
    queue = "flaky"
    created = client.jobs.create({"queue_name": queue, "payload": {"n": 1}, "max_retries": 2})
    attempts: list[tuple[int, float]] = []
    healthy = threading.Event()

    def handler(ctx: JobContext) -> dict[str, Any]:
        attempts.append((ctx.retry_count, time.monotonic()))
        if not healthy.is_set():
            raise RuntimeError(f"boom #{len(attempts)}")
        return {"ok": True, "attempt": len(attempts)}

    with running_worker(client, queue, handler, poll_interval=0.2) as (_, events):
        dead = wait_for(lambda: client.jobs.get(created.id), lambda j: j.status == "deadletter",
                        timeout=30, what="job in the dead-letter queue")
        assert [a[0] for a in attempts] == [0, 1, 2]
        # Backoff before retry k is 2^(k-1) s (CONTRACT §8.3): ≥1 s, then ≥2 s.
        assert attempts[1][1] - attempts[0][1] >= 0.9
        assert attempts[2][1] - attempts[1][1] >= 1.9
        assert dead.retry_count == 2
        assert dead.last_error == "boom #3"
        wait_for(lambda: [e for e in events if e[0] == "job:failed"], lambda f: len(f) == 3,
                 timeout=5, what="three job:failed events")

        dlq = client.jobs.dlq.list({"queue_name": queue})
        assert [j.id for j in dlq] == [created.id]
        assert dlq.has_more is False
        assert dlq[0].status == "deadletter"

        healthy.set()
        retried = client.jobs.dlq.retry({"job_ids": [created.id]})
        assert retried.retried_count == 1
        assert retried.retried_jobs == [created.id]
        assert retried.skipped_jobs == []

        done = wait_for(lambda: client.jobs.get(created.id), lambda j: j.status == "completed",
                        timeout=20, what="retried job completed")
    assert done.result == {"ok": True, "attempt": 4}
    assert done.retry_count == 0
    assert done.last_error is None
    assert client.jobs.dlq.list({"queue_name": queue}) == []
    history = [e.event_type for e in client.jobs.history(created.id)]
    assert history[0] == "created" and history[-1] == "completed", history


def test_worker_drains_a_burst_across_concurrency(client: SpooledClient) -> None:
    """20 jobs, concurrency 5: each runs exactly once and all end completed."""
    queue = "burst"
    bulk = client.jobs.bulk_enqueue({
        "queue_name": queue, "jobs": [{"payload": {"i": i}} for i in range(20)],
    })
    ids = [r.job_id or "" for r in bulk.succeeded]
    assert bulk.success_count == 20 and len(set(ids)) == 20
    runs: list[int] = []
    lock = threading.Lock()

    def handler(ctx: JobContext) -> dict[str, int]:
        with lock:
            runs.append(ctx.payload["i"])
        time.sleep(0.05)
        return {"i": ctx.payload["i"]}

    with running_worker(client, queue, handler, concurrency=5, poll_interval=0.2):
        wait_for(lambda: client.jobs.batch_status(ids),
                 lambda rows: len(rows) == 20 and all(r.status == "completed" for r in rows),
                 timeout=30, what="20 jobs completed")
    assert sorted(runs) == list(range(20))
    assert client.jobs.get(ids[7]).result == {"i": 7}
