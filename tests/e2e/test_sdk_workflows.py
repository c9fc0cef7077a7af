"""Workflows and job dependencies end to end with the official `spooled` SDK (CONTRACT §7.11,
§8.9, §21 R11): a 3-level diamond run by `SpooledWorker`s with one failing branch, retry,
cancel, and the dependency calls of `client.workflows.jobs` and `client.jobs`."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from spooled.client import SpooledClient
from spooled.errors import NotFoundError, ValidationError
from spooled.worker import JobContext

from tests.e2e.helpers import running_worker, wait_for


def _diamond(queue: str, fail_right: bool) -> dict[str, Any]:
    """root → (left, right) → join, plus left → left_tail: three levels, one diamond."""
    return {
        "name": "diamond pipeline",
        "description": "3-level diamond",
        "metadata": {"owner": "e2e"},
        "jobs": [
            {"key": "root", "queue_name": queue, "payload": {"step": "root"}},
            {"key": "left", "queue_name": queue, "payload": {"step": "left"}, "depends_on": ["root"]},
            {"key": "right", "queue_name": queue, "payload": {"step": "right", "fail": fail_right},
             "depends_on": ["root"], "max_retries": 0},
            {"key": "left_tail", "queue_name": queue, "payload": {"step": "left_tail"}, "depends_on": ["left"]},
            {"key": "join", "queue_name": queue, "payload": {"step": "join"}, "depends_on": ["left", "right"]},
        ],
    }


def test_diamond_with_a_failing_branch_run_by_sdk_workers(client: SpooledClient) -> None:
    queue = "dag"
    created = client.workflows.create(_diamond(queue, fail_right=True))
    assert created.status == "pending"
    ids = {m.key: m.job_id for m in created.job_ids}
    keys = {v: k for k, v in ids.items()}
    order: list[str] = []
    lock = threading.Lock()

    def handle(ctx: JobContext) -> dict[str, Any]:
        with lock:
            order.append(ctx.payload["step"])
        if ctx.payload.get("fail"):
            raise RuntimeError("right branch exploded")
        return {"step": ctx.payload["step"]}

    with running_worker(client, queue, handle, concurrency=3, poll_interval=0.05):
        final = wait_for(lambda: client.workflows.get(created.workflow_id),
                         lambda w: w.status in ("completed", "failed", "cancelled"), timeout=30,
                         what="workflow to finish")
    assert final.status == "failed"
    # failed_jobs counts failed + dead-lettered (CONTRACT §9.4); the cancelled join is not one
    assert (final.total_jobs, final.completed_jobs, final.failed_jobs) == (5, 3, 1)
    assert final.progress_percent == pytest.approx(60.0)
    assert final.completed_at is not None and final.started_at is not None
    # parents before children; the join never ran
    assert order[0] == "root" and "join" not in order
    assert order.index("left") < order.index("left_tail")
    assert sorted(order) == sorted(["root", "left", "right", "left_tail"])

    jobs = {j.key: j for j in client.workflows.jobs.list(created.workflow_id)}
    assert {k: j.status for k, j in jobs.items()} == {
        "root": "completed", "left": "completed", "left_tail": "completed", "right": "deadletter",
        "join": "cancelled"}
    assert jobs["right"].error is not None and "right branch exploded" in jobs["right"].error.message
    assert sorted(jobs["join"].depends_on or []) == sorted([ids["left"], ids["right"]])
    assert jobs["left"].result == {"step": "left"}
    join = client.jobs.get(ids["join"])
    assert join.last_error == f"Cancelled: parent job {ids['right']} ended deadletter, so this job can no longer run"
    statuses = {keys[s.job_id]: s.status for s in client.workflows.jobs.get_status(created.workflow_id)}
    assert statuses["join"] == "cancelled"
    deps = client.workflows.jobs.get_dependencies(ids["join"])
    assert deps.dependency_mode == "all" and deps.dependencies_met is False
    assert {(d.job_id, d.status, d.completed) for d in deps.dependencies} == {
        (ids["left"], "completed", True), (ids["right"], "deadletter", False)}
    assert {d.job_id for d in client.workflows.jobs.get_dependencies(ids["root"]).dependents} == {
        ids["left"], ids["right"]}
    assert [w.id for w in client.workflows.list({"status": "failed"})] == [created.workflow_id]

    # retry: right and join come back; this time right succeeds (the payload says fail, the
    # handler now ignores it) and the workflow completes
    retried = client.workflows.retry(created.workflow_id)
    assert retried.status == "running" and retried.failed_jobs == 0
    order.clear()

    def succeed(ctx: JobContext) -> dict[str, Any]:
        with lock:
            order.append(ctx.payload["step"])
        return {"step": ctx.payload["step"], "second": True}

    with running_worker(client, queue, succeed, concurrency=2, poll_interval=0.05):
        done = wait_for(lambda: client.workflows.get(created.workflow_id),
                        lambda w: w.status in ("completed", "failed"), timeout=30, what="retried workflow")
    assert done.status == "completed" and done.progress_percent == pytest.approx(100.0)
    assert order == ["right", "join"]
    with pytest.raises(ValidationError) as err:
        client.workflows.retry(created.workflow_id)
    assert "Nothing to retry" in str(err.value)


def test_cancel_and_sdk_dependency_calls(client: SpooledClient) -> None:
    created = client.workflows.create(_diamond("dag-cancel", fail_right=False))
    cancelled = client.workflows.cancel(created.workflow_id)
    assert cancelled.status == "cancelled"
    assert {j.status for j in client.workflows.jobs.list(created.workflow_id)} == {"cancelled"}
    with pytest.raises(NotFoundError):
        client.workflows.jobs.get(created.workflow_id, "00000000-0000-4000-8000-000000000000")

    # client.jobs with parent_job_id (R11) and client.workflows.jobs.add_dependencies
    parent = client.jobs.create({"queue_name": "deps", "payload": {"n": 1}})
    child = client.jobs.create({"queue_name": "deps", "payload": {"n": 2}, "parent_job_id": parent.id})
    extra = client.jobs.create({"queue_name": "deps-other", "payload": {"n": 3}})
    added = client.workflows.jobs.add_dependencies(child.id, {"dependency_job_ids": [extra.id],
                                                              "dependency_mode": "any"})
    assert (added.added_count, added.dependencies_met, added.job_id) == (1, False, child.id)
    got = client.workflows.jobs.get_dependencies(child.id)
    assert got.dependency_mode == "any" and {d.job_id for d in got.dependencies} == {parent.id, extra.id}
    ran: list[str] = []
    with running_worker(client, "deps", lambda ctx: ran.append(ctx.job_id) or {"ok": True},
                        concurrency=1, poll_interval=0.05):
        wait_for(lambda: client.jobs.get(child.id), lambda j: j.status == "completed", timeout=20,
                 what="child after parent")
    assert ran == [parent.id, child.id]
    assert client.jobs.get(extra.id).status == "pending", "any: one completed dependency was enough"
