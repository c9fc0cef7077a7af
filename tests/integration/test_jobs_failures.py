"""fail → retry with backoff → dead-letter; DLQ list/retry/purge; manual retry (CONTRACT §7.7, §8.3)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import ack, assert_error, claim, create_job, get_job


async def _q(api: Api, sql: str, *args: Any) -> Any:
    async with api.state.pool.acquire() as c:
        return await c.fetch(sql, *args)


async def _due(api: Api, job_id: str) -> None:
    await _q(api, "UPDATE jobs SET scheduled_at = now() - interval '1 ms' WHERE id = $1", job_id)


async def _deadletter(api: Api, h: dict[str, str], queue: str = "q1", **body: Any) -> str:
    job_id = await create_job(api, h, queue_name=queue, max_retries=0, **body)
    lease = (await claim(api, h, queue=queue))[0]["lease_id"]
    resp = await ack(api, h, job_id, "fail", worker_id="w1", lease_id=lease, error="fatal")
    assert resp.status_code == 200, resp.text
    return job_id


async def test_fail_retries_with_exact_backoff_then_deadletters(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, max_retries=8, payload={"task": "x"})
    expected = [1, 2, 4, 8, 16, 32, 60, 60]
    for attempt, delay in enumerate(expected):
        jobs = await claim(api, h)
        assert [j["id"] for j in jobs] == [job_id] and jobs[0]["retry_count"] == attempt
        resp = await ack(api, h, job_id, "fail", worker_id="w1", lease_id=jobs[0]["lease_id"],
                         error=f"err {attempt}")
        assert resp.status_code == 200
        assert resp.json() == {"success": True, "will_retry": True, "retry_delay_secs": delay}
        row = (await _q(api, """SELECT status, retry_count, last_error, lease_id, lease_expires_at,
                    completed_at, EXTRACT(EPOCH FROM scheduled_at - updated_at) AS delay
                    FROM jobs WHERE id = $1""", job_id))[0]
        assert dict(row) == {"status": "pending", "retry_count": attempt + 1, "last_error": f"err {attempt}",
                             "lease_id": jobs[0]["lease_id"], "lease_expires_at": None, "completed_at": None, "delay": delay}
        assert await claim(api, h) == []  # not due yet
        await _due(api, job_id)
    jobs = await claim(api, h)
    resp = await ack(api, h, job_id, "fail", worker_id="w1", lease_id=jobs[0]["lease_id"], error="final")
    assert resp.json() == {"success": True, "will_retry": False, "retry_delay_secs": 0}
    job = await get_job(api, h, job_id)
    assert (job["status"], job["retry_count"], job["last_error"]) == ("deadletter", 8, "final")
    assert job["completed_at"] is not None and job["lease_id"] is None
    audit = await _q(api, "SELECT * FROM dead_letter_queue WHERE job_id = $1", job_id)
    assert len(audit) == 1
    assert (audit[0]["reason"], audit[0]["queue_name"], audit[0]["original_payload"]) == ("final", "q1", {"task": "x"})
    assert audit[0]["error_details"] == {"retry_count": 8, "worker_id": "w1"}
    events = [e["event_type"] for e in (await api.client.get(f"/api/v1/jobs/{job_id}/history", headers=h)).json()]
    assert events == ["created"] + ["claimed", "retry_scheduled"] * 8 + ["claimed", "deadlettered"]


async def test_max_retries_zero_deadletters_at_first_failure(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await _deadletter(api, h)
    job = await get_job(api, h, job_id)
    assert (job["status"], job["retry_count"], job["max_retries"]) == ("deadletter", 0, 0)
    assert len(await _q(api, "SELECT 1 FROM dead_letter_queue WHERE job_id = $1", job_id)) == 1


async def test_queue_config_and_defaults_for_retries(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await _q(api, """INSERT INTO queue_config (organization_id, queue_name, max_retries, default_timeout)
                     VALUES ($1, 'cfg', 0, 42)""", tenant["org_id"])
    job = await get_job(api, h, await create_job(api, h, queue_name="cfg"))
    assert (job["max_retries"], job["timeout_seconds"]) == (0, 42)
    job = await get_job(api, h, await create_job(api, h, queue_name="cfg", max_retries=7, timeout_seconds=9))
    assert (job["max_retries"], job["timeout_seconds"]) == (7, 9)
    job = await get_job(api, h, await create_job(api, h, queue_name="plain"))
    assert (job["max_retries"], job["timeout_seconds"]) == (3, 300)


async def test_dlq_list_retry_and_audit_rows(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    a = await _deadletter(api, h, "qa")
    b = await _deadletter(api, h, "qb")
    c = await _deadletter(api, h, "qa")
    listed = await api.client.get("/api/v1/jobs/dlq", headers=h)
    assert listed.status_code == 200 and listed.headers["x-has-more"] == "false"
    assert [j["id"] for j in listed.json()] == [c, b, a]
    assert {j["status"] for j in listed.json()} == {"deadletter"}
    only_qa = await api.client.get("/api/v1/jobs/dlq?queue_name=qa&limit=1", headers=h)
    assert [j["id"] for j in only_qa.json()] == [c] and only_qa.headers["x-has-more"] == "true"

    resp = await api.client.post("/api/v1/jobs/dlq/retry", json={"job_ids": [b, "nope"]}, headers=h)
    assert resp.status_code == 200
    assert resp.json() == {"retried_count": 1, "retried_jobs": [b], "job_ids": [b], "skipped_jobs": []}
    job = await get_job(api, h, b)
    assert (job["status"], job["retry_count"], job["last_error"], job["completed_at"]) == ("pending", 0, None, None)
    assert await _q(api, "SELECT 1 FROM dead_letter_queue WHERE job_id = $1", b) == []
    # by queue, oldest first, limited
    resp = await api.client.post("/api/v1/jobs/dlq/retry", json={"queue_name": "qa", "limit": 1}, headers=h)
    assert resp.json()["retried_jobs"] == [a]
    resp = await api.client.post("/api/v1/jobs/dlq/retry", content=b"", headers=h)
    assert resp.json()["retried_jobs"] == [c]
    assert (await api.client.get("/api/v1/jobs/dlq", headers=h)).json() == []
    events = [e["event_type"] for e in (await api.client.get(f"/api/v1/jobs/{a}/history", headers=h)).json()]
    assert events[-1] == "retried"
    # retried jobs are claimable again at once
    assert {j["id"] for j in await claim(api, h, queue="qa", limit=5)} == {a, c}


async def test_child_of_deadlettered_parent_is_cancelled_and_stays_so_on_dlq_retry(
    api: Api, tenant: dict[str, Any]
) -> None:
    """R11: a parent that ended dead-lettered can no longer succeed, so a child created on it
    is cancelled at once (naming the parent); retrying the parent does not revive the child."""
    h = tenant["headers"]
    parent = await _deadletter(api, h)
    child = await create_job(api, h, parent_job_id=parent)
    job = await get_job(api, h, child)
    assert (job["status"], job["dependencies_met"]) == ("cancelled", False)
    assert job["last_error"] == f"Cancelled: parent job {parent} ended deadletter, so this job can no longer run"
    await api.client.post("/api/v1/jobs/dlq/retry", json={"job_ids": [parent]}, headers=h)
    assert (await get_job(api, h, child))["status"] == "cancelled"


async def test_dlq_purge(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    old = await _deadletter(api, h, "qa")
    await _q(api, "UPDATE jobs SET created_at = now() - interval '10 days' WHERE id = $1", old)
    recent = await _deadletter(api, h, "qa")
    other = await _deadletter(api, h, "qb")
    pending = await create_job(api, h, queue_name="qa")
    # an orphan audit row (job gone, e.g. by retention)
    await _q(api, """INSERT INTO dead_letter_queue (organization_id, job_id, queue_name, reason)
                     VALUES ($1, 'gone', 'qa', 'x')""", tenant["org_id"])

    resp = await api.client.post("/api/v1/jobs/dlq/purge", json={"confirm": False}, headers=h)
    assert_error(resp, 400, "BAD_REQUEST")
    resp = await api.client.post(
        "/api/v1/jobs/dlq/purge", json={"confirm": True, "queue_name": "qa", "older_than": "2100-01-01T00:00:00Z",
                                        "limit": 1}, headers=h)
    assert resp.status_code == 200 and resp.json() == {"purged_count": 1}
    assert_error(await api.client.get(f"/api/v1/jobs/{old}", headers=h), 404, "NOT_FOUND")
    resp = await api.client.post(
        "/api/v1/jobs/dlq/purge", json={"confirm": True, "older_than": "2000-01-01T00:00:00+00:00"}, headers=h)
    assert resp.json() == {"purged_count": 0}
    resp = await api.client.post("/api/v1/jobs/dlq/purge", json={"confirm": True, "queue_name": "qa"}, headers=h)
    assert resp.json() == {"purged_count": 1}
    remaining = {r["id"] for r in await _q(api, "SELECT id FROM jobs")}
    assert remaining == {other, pending} and recent not in remaining
    audit = {r["job_id"] for r in await _q(api, "SELECT job_id FROM dead_letter_queue")}
    assert audit == {other}
    resp = await api.client.post("/api/v1/jobs/dlq/purge", json={"confirm": True}, headers=h)
    assert resp.json() == {"purged_count": 1}
    assert await _q(api, "SELECT 1 FROM dead_letter_queue") == []


async def test_manual_retry(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    dead = await _deadletter(api, h)
    resp = await api.client.post(f"/api/v1/jobs/{dead}/retry", headers=h)
    assert resp.status_code == 200
    job = resp.json()
    assert (job["id"], job["status"], job["retry_count"], job["last_error"]) == (dead, "pending", 0, None)
    assert await _q(api, "SELECT 1 FROM dead_letter_queue WHERE job_id = $1", dead) == []
    # a legacy `failed` row can be retried too
    failed = await create_job(api, h)
    await _q(api, "UPDATE jobs SET status = 'failed', retry_count = 3, last_error = 'x' WHERE id = $1", failed)
    assert (await api.client.post(f"/api/v1/jobs/{failed}/retry", headers=h)).json()["retry_count"] == 0
    # other states: 409; unknown: 404
    for state_job in (await create_job(api, h), dead):
        err = assert_error(await api.client.post(f"/api/v1/jobs/{state_job}/retry", headers=h), 409, "CONFLICT")
        assert "pending" in err["message"]
    assert_error(await api.client.post("/api/v1/jobs/00000000-0000-4000-8000-000000000000/retry", headers=h),
                 404, "NOT_FOUND")
