"""The SDK's job, worker and health calls, called directly, against the real server."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from spooled.client import SpooledClient
from spooled.errors import ConflictError, NotFoundError, ValidationError, is_lease_expired

from tests.e2e.helpers import wait_for
from tests.e2e.server import ServerProcess


def test_list_filters_paging_stats_and_batch_status(client: SpooledClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    ids = [
        client.jobs.create({
            "queue_name": "invoices" if i % 2 == 0 else "reports",
            "payload": {"job_type": "send_invoice" if i % 2 == 0 else "render", "i": i},
            "tags": ["billing"] if i < 2 else {"team": "ops"},
        }).id
        for i in range(6)
    ]
    invoices = client.jobs.list({"queue_name": "invoices", "limit": 2})
    assert len(invoices) == 2 and invoices.has_more is True
    rest = client.jobs.list({"queue_name": "invoices", "limit": 2, "offset": 2})
    assert len(rest) == 1 and rest.has_more is False
    assert {j.id for j in [*invoices, *rest]} == {ids[0], ids[2], ids[4]}
    assert all(j.job_type == "send_invoice" and j.status == "pending" for j in invoices)

    assert {j.id for j in client.jobs.list({"job_type": "render"})} == {ids[1], ids[3], ids[5]}
    assert {j.id for j in client.jobs.list({"q": "invoice"})} == {ids[0], ids[2], ids[4]}
    assert {j.id for j in client.jobs.list({"q": ids[3][:12]})} == {ids[3]}
    assert {j.id for j in client.jobs.list({"tag": "billing"})} == {ids[0], ids[1]}
    assert {j.id for j in client.jobs.list({"tag": "team"})} == set(ids[2:])
    window = client.jobs.list({"created_after": before, "created_before": before + timedelta(hours=1)})
    assert len(window) == 6
    assert client.jobs.list({"created_after": datetime.now(UTC) + timedelta(hours=1)}) == []
    oldest_first = client.jobs.list({"order_by": "created_at", "order_dir": "asc"})
    assert [j.id for j in oldest_first] == ids
    unfiltered = client.jobs.list()
    assert len(unfiltered) == 6

    client.jobs.cancel(ids[5])
    assert {j.id for j in client.jobs.list({"status": ["cancelled", "completed"]})} == {ids[5]}
    assert {j.id for j in client.jobs.list({"status": "pending,cancelled"})} == set(ids)

    stats = client.jobs.get_stats()
    assert (stats.pending, stats.cancelled, stats.processing, stats.total) == (5, 1, 0, 6)

    rows = client.jobs.batch_status([ids[0], ids[5], str(uuid.uuid4())])
    assert {r.id: r.status for r in rows} == {ids[0]: "pending", ids[5]: "cancelled"}
    assert client.jobs.batch_status([]) == []


def test_bulk_priority_cancel_and_history(client: SpooledClient) -> None:
    bulk = client.jobs.bulk_enqueue({
        "queue_name": "bulk",
        "jobs": [
            {"payload": {"n": 0}, "idempotency_key": "bulk-a"},
            {"payload": {"n": 1}, "priority": 7},
            {"payload": {"n": 2}, "idempotency_key": "bulk-a"},
        ],
        "default_priority": 3,
        "default_max_retries": 1,
    })
    assert (bulk.total, bulk.success_count, bulk.failure_count) == (3, 3, 0)
    by_index = {r.index: r for r in bulk.succeeded}
    assert by_index[0].job_id == by_index[2].job_id  # duplicate key collapses to the first
    first = client.jobs.get(by_index[0].job_id or "")
    assert (first.priority, first.max_retries, first.idempotency_key) == (3, 1, "bulk-a")
    assert client.jobs.get(by_index[1].job_id or "").priority == 7

    boosted = client.jobs.boost_priority(first.id, 42)
    assert (boosted.job_id, boosted.old_priority, boosted.new_priority) == (first.id, 3, 42)
    assert client.jobs.get(first.id).priority == 42
    with pytest.raises(ValidationError):
        client.jobs.boost_priority(first.id, 101)

    client.jobs.cancel(first.id)
    cancelled = client.jobs.get(first.id)
    assert cancelled.status == "cancelled" and cancelled.completed_at is not None
    with pytest.raises(ConflictError):
        client.jobs.cancel(first.id)
    with pytest.raises(NotFoundError):
        client.jobs.get(str(uuid.uuid4()))

    history = client.jobs.history(first.id)
    assert history[0].event_type == "created"
    assert "cancelled" in [e.event_type for e in history]
    assert history.has_more is False
    newest = client.jobs.history(first.id, {"order_dir": "desc", "limit": 1})
    assert newest[0].id == history[-1].id and newest.has_more is True


def test_claim_complete_fail_heartbeat_with_leases(client: SpooledClient) -> None:
    queue = "direct"
    a = client.jobs.create({"queue_name": queue, "payload": {"k": "a"}, "priority": 9}).id
    b = client.jobs.create({"queue_name": queue, "payload": {"k": "b"}, "max_retries": 0}).id
    claimed = client.jobs.claim({"queue_name": queue, "worker_id": "w-1", "limit": 5,
                                 "lease_duration_secs": 60})
    assert [j.id for j in claimed.jobs] == [a, b]  # priority first
    leases = {j.id: j.lease_id for j in claimed.jobs}
    assert all(leases.values()) and len(set(leases.values())) == 2
    assert claimed.jobs[0].payload == {"k": "a"} and claimed.jobs[0].timeout_seconds == 300
    assert client.jobs.claim({"queue_name": queue, "worker_id": "w-1"}).jobs == []

    client.jobs.heartbeat(a, {"worker_id": "w-1", "lease_id": leases[a], "lease_duration_secs": 120})
    job_a = client.jobs.get(a)
    assert job_a.status == "processing" and job_a.assigned_worker_id == "w-1"
    assert job_a.lease_expires_at is not None
    assert job_a.lease_expires_at > datetime.now(UTC) + timedelta(seconds=90)

    with pytest.raises(ConflictError) as wrong:
        client.jobs.complete(a, {"worker_id": "w-1", "lease_id": str(uuid.uuid4())})
    assert is_lease_expired(wrong.value)
    with pytest.raises(NotFoundError):
        client.jobs.complete(a, {"worker_id": "w-other", "lease_id": leases[a]})
    # CONTRACT §21 R1: without lease_id the worker id fences (another worker: 404; holder: ok)
    with pytest.raises(NotFoundError):
        client.jobs.complete(a, {"worker_id": "w-other"})
    client.jobs.heartbeat(a, {"worker_id": "w-1", "lease_duration_secs": 120})

    ok = client.jobs.complete(a, {"worker_id": "w-1", "lease_id": leases[a], "result": [1, "x"]})
    assert ok.success is True
    assert client.jobs.get(a).result == [1, "x"]
    with pytest.raises(ConflictError) as replay:
        client.jobs.complete(a, {"worker_id": "w-1", "lease_id": leases[a], "result": [1, "x"]})
    assert "already completed" in replay.value.message.lower()
    assert not is_lease_expired(replay.value)

    failed = client.jobs.fail(b, {"worker_id": "w-1", "lease_id": leases[b], "error": "disk full"})
    assert failed.success is True
    job_b = client.jobs.get(b)
    assert (job_b.status, job_b.last_error) == ("deadletter", "disk full")
    assert [j.id for j in client.jobs.dlq.list({"queue_name": queue})] == [b]


def test_stale_lease_is_lease_expired(client: SpooledClient) -> None:
    """A lease that ran out, then a second claim of the same job: the first lease is refused
    with 409 LEASE_EXPIRED and the holder of the new lease completes."""
    queue = "stale"
    job_id = client.jobs.create({"queue_name": queue, "payload": {}, "max_retries": 3}).id
    first = client.jobs.claim({"queue_name": queue, "worker_id": "w-s", "lease_duration_secs": 5})
    old_lease = first.jobs[0].lease_id
    expires = first.jobs[0].lease_expires_at
    assert expires is not None
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.3)

    with pytest.raises(ConflictError) as expired:
        client.jobs.heartbeat(job_id, {"worker_id": "w-s", "lease_id": old_lease})
    assert is_lease_expired(expired.value)

    # The recovery sweep (1 s here) puts it back with a 1 s backoff; claim it again.
    again = wait_for(
        lambda: client.jobs.claim({"queue_name": queue, "worker_id": "w-s"}).jobs,
        bool, timeout=15, what="the recovered job to be claimable")
    assert again[0].id == job_id and again[0].retry_count == 1
    assert again[0].lease_id != old_lease

    with pytest.raises(ConflictError) as stale:
        client.jobs.complete(job_id, {"worker_id": "w-s", "lease_id": old_lease})
    assert is_lease_expired(stale.value)
    with pytest.raises(ConflictError) as stale_fail:
        client.jobs.fail(job_id, {"worker_id": "w-s", "lease_id": old_lease, "error": "late"})
    assert is_lease_expired(stale_fail.value)
    assert client.jobs.complete(job_id, {"worker_id": "w-s", "lease_id": again[0].lease_id}).success
    job = client.jobs.get(job_id)
    assert job.status == "completed" and job.last_error == "Lease expired (worker timeout)"


def test_workers_register_heartbeat_deregister(client: SpooledClient) -> None:
    reg = client.workers.register({"queue_name": "wq", "hostname": "host-1", "max_concurrency": 3,
                                   "worker_id": "pod-7", "metadata": {"zone": "a"}})
    assert (reg.id, reg.queue_name) == ("pod-7", "wq")
    assert reg.heartbeat_interval_secs >= 1 and reg.lease_duration_secs == 30
    client.workers.heartbeat(reg.id, {"current_jobs": 2, "status": "degraded"})
    worker = client.workers.get(reg.id)
    assert (worker.status, worker.current_jobs, worker.hostname) == ("degraded", 2, "host-1")
    assert [w.id for w in client.workers.list()] == ["pod-7"]

    again = client.workers.register({"queue_name": "wq2", "hostname": "host-2", "worker_id": "pod-7"})
    assert again.id == "pod-7"
    assert client.workers.get("pod-7").queue_name == "wq2"
    assert len(client.workers.list()) == 1

    client.workers.deregister(reg.id)
    assert client.workers.get(reg.id).status == "offline"
    client.workers.deregister(reg.id)  # idempotent
    with pytest.raises(NotFoundError):
        client.workers.heartbeat(str(uuid.uuid4()), {"current_jobs": 0})


def test_health_calls(client: SpooledClient, server: ServerProcess) -> None:
    health = client.health.get()
    assert health.status == "healthy" and health.database is True
    assert health.cache is (server.redis_url is not None)
    assert client.health.liveness() is True
    assert client.health.readiness() is True
