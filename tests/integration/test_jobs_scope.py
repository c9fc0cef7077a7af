"""Queue-scoped API keys on job and DLQ routes (CONTRACT §4.1, §3.2: 403 on writes, 404 on reads)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import (
    ack,
    assert_error,
    claim,
    create_job,
    get_job,
    scoped_key,
    table_fingerprint,
)


async def _deadletter(api: Api, h: dict[str, str], queue: str) -> str:
    job_id = await create_job(api, h, queue_name=queue, max_retries=0)
    lease = (await claim(api, h, queue=queue))[0]["lease_id"]
    assert (await ack(api, h, job_id, "fail", worker_id="w1", lease_id=lease)).status_code == 200
    return job_id


async def test_scoped_key_sees_and_touches_only_its_queues(api: Api, tenant: dict[str, Any]) -> None:
    admin = tenant["headers"]
    sk = await scoped_key(api, tenant["org_id"], ["allowed", "also"])
    their_dead = await _deadletter(api, admin, "other")
    my_dead = await _deadletter(api, admin, "allowed")
    mine = await create_job(api, sk, queue_name="allowed")
    theirs = await create_job(api, admin, queue_name="other")
    their_running = await create_job(api, admin, queue_name="busy")
    lease = (await claim(api, admin, queue="busy"))[0]["lease_id"]
    before = await table_fingerprint(api.state.pool)

    # writes into another queue: 403
    for path, body in [
        ("/api/v1/jobs", {"queue_name": "other", "payload": 1}),
        ("/api/v1/jobs/claim", {"queue_name": "other", "worker_id": "w"}),
        ("/api/v1/jobs/bulk", {"queue_name": "other", "jobs": [{"payload": 1}]}),
        ("/api/v1/jobs/dlq/retry", {}),
        ("/api/v1/jobs/dlq/retry", {"queue_name": "other"}),
        ("/api/v1/jobs/dlq/retry", {"queue_name": "allowed", "job_ids": [my_dead]}),
        ("/api/v1/jobs/dlq/purge", {"confirm": True}),
        ("/api/v1/jobs/dlq/purge", {"confirm": True, "queue_name": "other"}),
    ]:
        resp = await api.client.post(path, json=body, headers=sk)
        try:
            assert_error(resp, 403, "ACCESS_DENIED")
        except AssertionError as exc:
            raise AssertionError(f"{path} {body}: {exc}") from None

    # reads and actions on another queue's job: 404, and nothing happens
    for method, path, body in [
        ("GET", f"/api/v1/jobs/{theirs}", None),
        ("GET", f"/api/v1/jobs/{theirs}/history", None),
        ("DELETE", f"/api/v1/jobs/{theirs}", None),
        ("PUT", f"/api/v1/jobs/{theirs}/priority", {"priority": 9}),
        ("POST", f"/api/v1/jobs/{their_dead}/retry", None),
        ("POST", f"/api/v1/jobs/{their_running}/complete", {"worker_id": "w1", "lease_id": lease}),
        ("POST", f"/api/v1/jobs/{their_running}/fail", {"worker_id": "w1", "lease_id": lease, "error": "x"}),
        ("POST", f"/api/v1/jobs/{their_running}/heartbeat", {"worker_id": "w1", "lease_id": lease}),
        ("GET", "/api/v1/jobs/stats?queue_name=other", None),
    ]:
        resp = await api.client.request(method, path, json=body, headers=sk)
        try:
            assert_error(resp, 404, "NOT_FOUND")
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from None
    assert await table_fingerprint(api.state.pool) == before

    # lists, stats and batch status only show in-scope queues
    listed = (await api.client.get("/api/v1/jobs", headers=sk)).json()
    assert {j["id"] for j in listed} == {mine, my_dead}
    assert (await api.client.get("/api/v1/jobs?queue_name=other", headers=sk)).json() == []
    assert [j["id"] for j in (await api.client.get("/api/v1/jobs/dlq", headers=sk)).json()] == [my_dead]
    stats = (await api.client.get("/api/v1/jobs/stats", headers=sk)).json()
    assert (stats["pending"], stats["deadletter"], stats["processing"], stats["total"]) == (1, 1, 0, 2)
    status = (await api.client.get(f"/api/v1/jobs/status?ids={mine},{theirs}", headers=sk)).json()
    assert [s["id"] for s in status] == [mine]

    # in scope everything works
    assert (await get_job(api, sk, mine))["queue_name"] == "allowed"
    resp = await api.client.post("/api/v1/jobs/dlq/retry", json={"queue_name": "allowed"}, headers=sk)
    assert resp.json()["retried_jobs"] == [my_dead]
    got = await claim(api, sk, queue="allowed", limit=5)
    assert {j["id"] for j in got} == {mine, my_dead}
    for job in got:
        resp = await ack(api, sk, job["id"], "complete", worker_id="w1", lease_id=job["lease_id"])
        assert resp.status_code == 200
    assert (await get_job(api, admin, their_running))["status"] == "processing"
    assert (await get_job(api, admin, theirs))["status"] == "pending"


async def test_star_scope_is_unrestricted(api: Api, tenant: dict[str, Any]) -> None:
    star = await scoped_key(api, tenant["org_id"], ["*"])
    job = await create_job(api, star, queue_name="anything")
    assert (await get_job(api, star, job))["id"] == job
    resp = await api.client.post("/api/v1/jobs/dlq/purge", json={"confirm": True}, headers=star)
    assert resp.status_code == 200
