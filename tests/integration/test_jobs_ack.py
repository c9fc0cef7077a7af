"""POST /api/v1/jobs/ack (CONTRACT §20 D5): per-item outcomes with the single-job rules."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job, get_job

ACK = "/api/v1/jobs/ack"


async def post_ack(api: Api, h: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await api.client.post(ACK, json=body, headers=h)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def test_completes_and_fails_in_one_request(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    reg = await api.client.post("/api/v1/workers/register",
                                json={"queue_name": "q1", "hostname": "h"}, headers=h)
    assert reg.status_code in (200, 201), reg.text
    worker = reg.json()["id"]
    ok1, ok2 = await create_job(api, h), await create_job(api, h)
    retry, dead = await create_job(api, h, max_retries=3), await create_job(api, h, max_retries=0)
    jobs = {j["id"]: j for j in await claim(api, h, worker=worker, limit=4)}
    assert set(jobs) == {ok1, ok2, retry, dead}
    out = await post_ack(api, h, worker_id=worker, completed=[
        {"job_id": ok1, "lease_id": jobs[ok1]["lease_id"], "result": {"r": 1}},
        {"job_id": ok2, "lease_id": jobs[ok2]["lease_id"]},
    ], failed=[
        {"job_id": retry, "lease_id": jobs[retry]["lease_id"], "error": "flaky"},
        {"job_id": dead, "lease_id": jobs[dead]["lease_id"], "error": "fatal"},
    ])
    assert out == {"results": [{"job_id": i, "success": True} for i in (ok1, ok2, retry, dead)]}

    one = await get_job(api, h, ok1)
    assert (one["status"], one["result"]) == ("completed", {"r": 1})
    assert (await get_job(api, h, ok2))["status"] == "completed"
    again = await get_job(api, h, retry)
    assert (again["status"], again["retry_count"], again["last_error"]) == ("pending", 1, "flaky")
    gone = await get_job(api, h, dead)
    assert (gone["status"], gone["last_error"]) == ("deadletter", "fatal")
    dlq = (await api.client.get("/api/v1/jobs/dlq", headers=h)).json()
    assert [d["id"] for d in dlq] == [dead]

    hist = (await api.client.get(f"/api/v1/jobs/{ok1}/history", headers=h)).json()
    assert [e["event_type"] for e in hist] == ["created", "claimed", "completed"]
    assert hist[-1]["worker_id"] == worker
    hist = (await api.client.get(f"/api/v1/jobs/{retry}/history", headers=h)).json()
    assert hist[-1]["event_type"] == "retry_scheduled"
    assert hist[-1]["details"]["error"] == "flaky" and hist[-1]["details"]["retry_count"] == 1
    hist = (await api.client.get(f"/api/v1/jobs/{dead}/history", headers=h)).json()
    assert hist[-1]["event_type"] == "deadlettered"

    got = (await api.client.get(f"/api/v1/workers/{worker}", headers=h)).json()
    assert (got["jobs_processed"], got["jobs_failed"]) == (2, 2)


async def test_each_item_answers_like_the_single_routes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ids = [await create_job(api, h) for _ in range(4)]
    jobs = {j["id"]: j for j in await claim(api, h, worker="w1", limit=4)}
    done, replaced, other_worker, fresh = ids
    assert (await ack(api, h, done, "complete", worker_id="w1",
                      lease_id=jobs[done]["lease_id"])).status_code == 200

    items = [
        {"job_id": done, "lease_id": jobs[done]["lease_id"]},          # replay
        {"job_id": replaced, "lease_id": "not-the-lease"},             # wrong lease
        {"job_id": "8b1f0c56-0000-4000-8000-000000000000"},            # unknown
        {"job_id": "not-a-uuid"},                                      # malformed
        {"job_id": fresh, "lease_id": jobs[fresh]["lease_id"]},        # applies
        {"job_id": fresh, "lease_id": jobs[fresh]["lease_id"]},        # twice in the batch
    ]
    out = await post_ack(api, h, worker_id="w1", completed=items, failed=[
        {"job_id": other_worker, "lease_id": jobs[other_worker]["lease_id"], "error": "x"},
    ])
    # What the single routes answer for the same calls, item by item.
    single = []
    for item in items[:4]:
        resp = await ack(api, h, item["job_id"], "complete", worker_id="w1",
                         **({"lease_id": item["lease_id"]} if "lease_id" in item else {}))
        single.append(resp.json()["code"])
    codes = [r.get("code") for r in out["results"]]
    assert codes[:4] == single == ["CONFLICT", "LEASE_EXPIRED", "NOT_FOUND", "NOT_FOUND"]
    assert out["results"][0]["message"] == "Job is already completed"
    assert out["results"][4] == {"job_id": fresh, "success": True}
    assert out["results"][5]["success"] is False and out["results"][5]["code"] == "BAD_REQUEST"
    # fail with the right lease: applied (w1 holds all four leases)
    assert out["results"][6] == {"job_id": other_worker, "success": True}
    assert (await get_job(api, h, replaced))["status"] == "processing"

    # Another worker's ack of a job it does not hold: not found, nothing changes.
    more = await create_job(api, h, queue_name="other-q")  # (the failed job above retries in q1)
    (job,) = await claim(api, h, queue="other-q", worker="w1")
    out = await post_ack(api, h, worker_id="w2",
                         completed=[{"job_id": more, "lease_id": job["lease_id"]}])
    assert out["results"][0]["code"] == "NOT_FOUND"
    assert (await get_job(api, h, more))["status"] == "processing"


async def test_legacy_items_without_lease_id(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    await claim(api, h, worker="w1")
    out = await post_ack(api, h, worker_id="w1", completed=[{"job_id": job_id}])
    assert out["results"] == [{"job_id": job_id, "success": True}]
    out = await post_ack(api, h, worker_id="w1", completed=[{"job_id": job_id}])
    assert out["results"][0]["code"] == "CONFLICT"


async def test_dependents_are_released(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, queue_name="dq")
    child = await create_job(api, h, queue_name="dq", parent_job_id=parent)
    (job,) = await claim(api, h, queue="dq", worker="w1", limit=5)
    assert job["id"] == parent
    out = await post_ack(api, h, worker_id="w1",
                         completed=[{"job_id": parent, "lease_id": job["lease_id"]}])
    assert out["results"][0]["success"]
    (next_job,) = await claim(api, h, queue="dq", worker="w1", limit=5)
    assert next_job["id"] == child


async def test_deadlettered_parent_cancels_dependents(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, queue_name="dq2", max_retries=0)
    child = await create_job(api, h, queue_name="dq2", parent_job_id=parent)
    (job,) = await claim(api, h, queue="dq2", worker="w1")
    out = await post_ack(api, h, worker_id="w1",
                         failed=[{"job_id": parent, "lease_id": job["lease_id"], "error": "no"}])
    assert out["results"][0]["success"]
    assert (await get_job(api, h, child))["status"] == "cancelled"


async def test_bounds_and_validation(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    resp = await api.client.post(ACK, json={"worker_id": "w"}, headers=h)
    assert resp.status_code == 400, resp.text
    items = [{"job_id": f"8b1f0c56-0000-4000-8000-{i:012d}"} for i in range(101)]
    resp = await api.client.post(ACK, json={"worker_id": "w", "completed": items}, headers=h)
    assert resp.status_code in (400, 422), resp.text
    resp = await api.client.post(ACK, json={"worker_id": "w", "completed": items[:60],
                                            "failed": [{**i, "error": "e"} for i in items[60:]]},
                                 headers=h)
    assert resp.status_code == 400, resp.text
    resp = await api.client.post(ACK, json={"worker_id": "w", "failed": [{"job_id": "x"}]},
                                 headers=h)
    assert resp.status_code == 422, resp.text  # error is required
    resp = await api.client.post(ACK, json={"completed": []}, headers=h)
    assert resp.status_code == 422, resp.text
    resp = await api.client.post(ACK, json={"worker_id": "w", "completed": [{"job_id": "x"}]})
    assert resp.status_code == 401


async def test_scoped_key_cannot_ack_other_queues(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, queue_name="secret")
    (job,) = await claim(api, h, queue="secret", worker="w1")
    resp = await api.client.post("/api/v1/api-keys", json={"name": "s", "queues": ["mine"]},
                                 headers=h)
    assert resp.status_code == 201, resp.text
    scoped = api.as_key(resp.json()["key"])
    out = await post_ack(api, scoped, worker_id="w1",
                         completed=[{"job_id": job_id, "lease_id": job["lease_id"]}])
    assert out["results"][0]["code"] == "NOT_FOUND"
    assert (await get_job(api, h, job_id))["status"] == "processing"


async def test_hot_routes_are_in_openapi(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/api/v1/jobs", "/api/v1/jobs/claim", "/api/v1/jobs/ack",
                 "/api/v1/jobs/{job_id}/complete", "/api/v1/jobs/{job_id}/fail",
                 "/api/v1/jobs/{job_id}/heartbeat"):
        assert "post" in paths[path], path
