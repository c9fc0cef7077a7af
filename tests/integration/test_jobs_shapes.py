"""Response shapes against the official SDK's own pydantic models (docs/sdk-wire-notes.md §3.1).

The SDK needs a real HTTP server to drive it end to end (e2e tests do that); here every job and
DLQ response body is validated with the exact models `spooled==1.6.0` parses them with, and the
fields the SDK is strict about are asserted one by one.
"""

from __future__ import annotations

from typing import Any

from spooled.types.common import parse_has_more
from spooled.types.jobs import (
    BatchJobStatus,
    BoostPriorityResponse,
    BulkEnqueueResponse,
    ClaimJobsResponse,
    CompleteJobResponse,
    CreateJobResponse,
    FailJobResponse,
    Job,
    JobHistoryEvent,
    JobStats,
    JobSummary,
    PurgeDlqResponse,
    RetryDlqResponse,
)

from tests.conftest import Api
from tests.integration.jobs_support import RFC3339_Z, UUID_RE, claim, create_job

JOB_KEYS = {
    "id", "organization_id", "queue_name", "status", "payload", "result", "retry_count", "max_retries",
    "last_error", "created_at", "scheduled_at", "started_at", "completed_at", "expires_at", "priority",
    "tags", "timeout_seconds", "parent_job_id", "completion_webhook", "assigned_worker_id", "lease_id",
    "lease_expires_at", "idempotency_key", "updated_at", "workflow_id", "dependency_mode",
    "dependencies_met",
}
TIME_KEYS = ("created_at", "scheduled_at", "started_at", "completed_at", "expires_at", "lease_expires_at",
             "updated_at")


def _times_ok(obj: dict[str, Any]) -> None:
    for key in TIME_KEYS:
        if obj.get(key) is not None:
            assert RFC3339_Z.match(obj[key]), (key, obj[key])


async def test_job_object_and_create(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    resp = await api.client.post("/api/v1/jobs", headers=h, json={
        "queue_name": "q1", "payload": {"job_type": "mail", "n": [1, 2]}, "priority": 7, "max_retries": 2,
        "timeout_seconds": 60, "scheduled_at": "2020-01-01T00:00:00+02:00", "expires_at": "2099-01-01T00:00:00Z",
        "idempotency_key": "idem-1", "tags": {"team": "a"}, "completion_webhook": "https://example.com/done",
        "completion_webhook_secret": "s3cret"})
    assert resp.status_code == 201 and resp.headers["content-type"].startswith("application/json")
    created = CreateJobResponse.model_validate(resp.json())
    assert created.created is True and UUID_RE.match(created.id)
    resp = await api.client.get(f"/api/v1/jobs/{created.id}", headers=h)
    body = resp.json()
    assert set(body) == JOB_KEYS  # completion_webhook_secret never leaves the server
    _times_ok(body)
    job = Job.model_validate(body)
    assert (job.organization_id, job.status, job.priority, job.max_retries, job.timeout_seconds) == (
        tenant["org_id"], "pending", 7, 2, 60)
    assert body["scheduled_at"] == "2019-12-31T22:00:00Z" and body["expires_at"] == "2099-01-01T00:00:00Z"
    assert (job.tags, job.idempotency_key, job.completion_webhook) == ({"team": "a"}, "idem-1",
                                                                       "https://example.com/done")
    assert (body["result"], body["lease_id"], body["retry_count"], body["dependency_mode"],
            body["dependencies_met"]) == (None, None, 0, "all", True)
    hit = await api.client.post("/api/v1/jobs", json={"queue_name": "q1", "payload": 1, "idempotency_key": "idem-1"},
                                headers=h)
    assert CreateJobResponse.model_validate(hit.json()).created is False


async def test_worker_path_shapes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ok = await create_job(api, h, payload={"a": 1})
    bad = await create_job(api, h, max_retries=1)
    resp = await api.client.post("/api/v1/jobs/claim", headers=h,
                                 json={"queue_name": "q1", "worker_id": "w1", "limit": 5, "lease_duration_secs": 30})
    claimed = ClaimJobsResponse.model_validate(resp.json())
    assert [j.id for j in claimed.jobs] == [ok, bad]
    for raw in resp.json()["jobs"]:
        assert {"id", "queue_name", "payload", "retry_count", "max_retries", "timeout_seconds", "lease_expires_at",
                "lease_id"} <= set(raw)
        assert raw["lease_id"] and raw["timeout_seconds"] >= 1 and RFC3339_Z.match(raw["lease_expires_at"])
    lease = {j.id: j.lease_id for j in claimed.jobs}
    hb = await api.client.post(f"/api/v1/jobs/{ok}/heartbeat", headers=h,
                               json={"worker_id": "w1", "lease_id": lease[ok], "lease_duration_secs": 30})
    assert hb.status_code == 200 and hb.content and hb.headers["content-type"].startswith("application/json")
    done = await api.client.post(f"/api/v1/jobs/{ok}/complete", headers=h,
                                 json={"worker_id": "w1", "lease_id": lease[ok], "result": [1]})
    assert CompleteJobResponse.model_validate(done.json()).success is True
    failed = await api.client.post(f"/api/v1/jobs/{bad}/fail", headers=h,
                                   json={"worker_id": "w1", "lease_id": lease[bad], "error": "x"})
    assert FailJobResponse.model_validate(failed.json()).success is True
    history = await api.client.get(f"/api/v1/jobs/{ok}/history", headers=h)
    assert parse_has_more(history.headers) is False
    events = [JobHistoryEvent.model_validate(e) for e in history.json()]
    assert [e.event_type for e in events] == ["created", "claimed", "completed"]
    for raw in history.json():
        assert set(raw) == {"id", "job_id", "event_type", "worker_id", "details", "created_at"}
        assert RFC3339_Z.match(raw["created_at"]) and raw["job_id"] == ok


async def test_list_stats_status_bulk_boost_shapes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    bulk = await api.client.post("/api/v1/jobs/bulk", headers=h, json={
        "queue_name": "q1", "jobs": [{"payload": {"job_type": "t"}}, {"payload": None, "priority": 3}, {}],
        "default_priority": 1})
    parsed = BulkEnqueueResponse.model_validate(bulk.json())
    assert (parsed.total, parsed.success_count, parsed.failure_count) == (3, 2, 1)
    assert parsed.failed[0].index == 2 and parsed.failed[0].error
    ids = [s.job_id for s in parsed.succeeded]
    listed = await api.client.get("/api/v1/jobs?limit=50&offset=0", headers=h)
    assert parse_has_more(listed.headers) is False
    summaries = [JobSummary.model_validate(j) for j in listed.json()]
    assert {s.id for s in summaries} == set(ids)
    for raw in listed.json():
        assert isinstance(raw["job_type"], str) and raw["attempt"] == raw["retry_count"]
        _times_ok(raw)
    by_id = {s.id: s for s in summaries}
    assert (by_id[ids[0]].priority, by_id[ids[0]].job_type) == (1, "t")
    assert (by_id[ids[1]].priority, by_id[ids[1]].job_type) == (3, "")
    stats = JobStats.model_validate((await api.client.get("/api/v1/jobs/stats", headers=h)).json())
    assert (stats.pending, stats.total) == (2, 2)
    status = await api.client.get(f"/api/v1/jobs/status?ids={ids[0]}%2C{ids[1]}", headers=h)
    rows = [BatchJobStatus.model_validate(r) for r in status.json()]
    assert {r.id for r in rows} == set(ids)
    boost = await api.client.put(f"/api/v1/jobs/{ids[0]}/priority", json={"priority": 5}, headers=h)
    assert BoostPriorityResponse.model_validate(boost.json()).new_priority == 5
    got = await api.client.post(f"/api/v1/jobs/{ids[0]}/retry", headers=h)
    assert got.status_code == 409


async def test_dlq_shapes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, max_retries=0)
    lease = (await claim(api, h))[0]["lease_id"]
    await api.client.post(f"/api/v1/jobs/{job_id}/fail", json={"worker_id": "w1", "lease_id": lease, "error": "e"},
                          headers=h)
    dlq = await api.client.get("/api/v1/jobs/dlq?limit=50&offset=0", headers=h)
    assert parse_has_more(dlq.headers) is False
    assert [JobSummary.model_validate(j).status for j in dlq.json()] == ["deadletter"]
    assert dlq.json()[0]["last_error"] == "e"
    retried = RetryDlqResponse.model_validate(
        (await api.client.post("/api/v1/jobs/dlq/retry", json={}, headers=h)).json())
    assert (retried.retried_count, retried.retried_jobs, retried.skipped_jobs) == (1, [job_id], [])
    manual = await api.client.post(f"/api/v1/jobs/{job_id}/retry", headers=h)
    assert manual.status_code == 409
    purge = await api.client.post("/api/v1/jobs/dlq/purge", json={"confirm": True}, headers=h)
    assert PurgeDlqResponse.model_validate(purge.json()).purged_count == 0
    # manual retry returns a full Job
    lease = (await claim(api, h))[0]["lease_id"]
    await api.client.post(f"/api/v1/jobs/{job_id}/fail", json={"worker_id": "w1", "lease_id": lease, "error": "e"},
                          headers=h)
    manual = await api.client.post(f"/api/v1/jobs/{job_id}/retry", headers=h)
    body = manual.json()
    assert set(body) == JOB_KEYS and Job.model_validate(body).status == "pending"
