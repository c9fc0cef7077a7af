"""Group commit (jobs/coalesce.py): concurrent single creates, completes and fails of one
organization share a transaction, and every request still gets its own single-route answer.

The batch sizes are observed by wrapping the GroupCommit's `apply` (the database work itself is
real); concurrent requests are sent with asyncio.gather through the in-process app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import Api, _api
from tests.integration.jobs_support import ack, assert_error, claim, create_job, get_job


@contextmanager
def batch_sizes(commit: Any) -> Iterator[list[int]]:
    """Record the size of every batch `commit` (a GroupCommit) applies."""
    sizes: list[int] = []
    original = commit.apply

    async def recording(conn: Any, auth: Any, items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        return await original(conn, auth, items)

    commit.apply = recording
    try:
        yield sizes
    finally:
        commit.apply = original


async def _register(api: Api, h: dict[str, str]) -> str:
    reg = await api.client.post("/api/v1/workers/register",
                                json={"queue_name": "q1", "hostname": "h"}, headers=h)
    assert reg.status_code in (200, 201), reg.text
    worker: str = reg.json()["id"]
    return worker


async def test_concurrent_completes_share_transactions_and_answer_each(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    worker = await _register(api, h)
    ids = [await create_job(api, h) for _ in range(20)]
    jobs = {j["id"]: j for j in await claim(api, h, worker=worker, limit=20)}
    assert set(jobs) == set(ids)
    with batch_sizes(api.state.acks) as sizes:
        answers = await asyncio.gather(*[
            ack(api, h, i, "complete", worker_id=worker, lease_id=jobs[i]["lease_id"],
                result={"n": n})
            for n, i in enumerate(ids)
        ])
    assert [(r.status_code, r.json()) for r in answers] == [(200, {"success": True})] * 20
    assert sum(sizes) == 20 and max(sizes) > 1, sizes  # fewer transactions than requests
    for n, i in enumerate(ids):
        job = await get_job(api, h, i)
        assert (job["status"], job["result"]) == ("completed", {"n": n})
        hist = (await api.client.get(f"/api/v1/jobs/{i}/history", headers=h)).json()
        assert [(e["event_type"], e["worker_id"]) for e in hist][-1] == ("completed", worker)
    await asyncio.sleep(1.2)  # worker counters are flushed once a second (workers/counters.py)
    got = (await api.client.get(f"/api/v1/workers/{worker}", headers=h)).json()
    assert got["jobs_processed"] == 20


async def test_one_bad_item_does_not_fail_its_batch(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ok, wrong_lease, other_worker, retry = [await create_job(api, h, max_retries=2)
                                            for _ in range(4)]
    jobs = {j["id"]: j for j in await claim(api, h, worker="w1", limit=4)}
    lease = {i: jobs[i]["lease_id"] for i in jobs}
    with batch_sizes(api.state.acks) as sizes:
        a, b, c, d = await asyncio.gather(
            ack(api, h, ok, "complete", worker_id="w1", lease_id=lease[ok]),
            ack(api, h, wrong_lease, "complete", worker_id="w1",
                lease_id="00000000-0000-4000-8000-000000000000"),
            ack(api, h, other_worker, "complete", worker_id="w2", lease_id=lease[other_worker]),
            ack(api, h, retry, "fail", worker_id="w1", lease_id=lease[retry], error="flaky"),
        )
    assert max(sizes) > 1, sizes
    assert a.status_code == 200
    assert_error(b, 409, "LEASE_EXPIRED")
    assert_error(c, 404, "NOT_FOUND")
    assert d.status_code == 200
    assert d.json() == {"success": True, "will_retry": True, "retry_delay_secs": 1}
    assert (await get_job(api, h, wrong_lease))["status"] == "processing"
    assert (await get_job(api, h, other_worker))["status"] == "processing"
    again = await get_job(api, h, retry)
    assert (again["status"], again["retry_count"], again["last_error"]) == ("pending", 1, "flaky")


async def test_racing_acks_of_one_job_answer_as_if_sequential(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    [job] = await claim(api, h, worker="w1")
    body = {"worker_id": "w1", "lease_id": job["lease_id"], "result": {"first": True}}
    answers = await asyncio.gather(*[ack(api, h, job_id, "complete", **body) for _ in range(3)])
    assert sorted(r.status_code for r in answers) == [200, 409, 409]
    for r in answers:
        if r.status_code == 409:
            assert assert_error(r, 409, "CONFLICT")["message"] == "Job is already completed"


async def test_json_arrays_survive_every_array_parameter(api: Api, tenant: dict[str, Any]) -> None:
    """A JSON array inside a `jsonb[]` parameter was read as another array dimension: a list
    result made the ack statement answer two rows (500), a list payload two bulk jobs."""
    h = tenant["headers"]
    single, batched = await create_job(api, h), await create_job(api, h)
    jobs = {j["id"]: j for j in await claim(api, h, worker="w1", limit=2)}
    resp = await ack(api, h, single, "complete", worker_id="w1",
                     lease_id=jobs[single]["lease_id"], result=[1, "x"])
    assert resp.status_code == 200, resp.text
    resp = await api.client.post("/api/v1/jobs/ack", headers=h, json={
        "worker_id": "w1",
        "completed": [{"job_id": batched, "lease_id": jobs[batched]["lease_id"],
                       "result": [[1, 2], []]}]})
    assert resp.json() == {"results": [{"job_id": batched, "success": True}]}
    assert (await get_job(api, h, single))["result"] == [1, "x"]
    assert (await get_job(api, h, batched))["result"] == [[1, 2], []]

    resp = await api.client.post("/api/v1/jobs/bulk", headers=h, json={
        "queue_name": "lists", "jobs": [{"payload": [1, 2, 3]}, {"payload": []}]})
    assert resp.status_code in (200, 201), resp.text
    made = resp.json()["succeeded"]
    assert len(made) == 2
    payloads = [(await get_job(api, h, m["job_id"]))["payload"] for m in made]
    assert payloads == [[1, 2, 3], []]

    resp = await api.client.post("/api/v1/workflows", headers=h, json={
        "name": "lists", "jobs": [{"key": "a", "queue_name": "lists", "payload": ["p", 1],
                                   "tags": ["t1", "t2"]}]})
    assert resp.status_code in (200, 201), resp.text
    [node] = resp.json()["job_ids"]
    job = await get_job(api, h, node["job_id"])
    assert (job["payload"], job["tags"]) == (["p", 1], ["t1", "t2"])


async def test_concurrent_creates_share_transactions_and_keep_per_item_rules(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    scoped = await api.client.post("/api/v1/api-keys", headers=h,
                                   json={"name": "scoped", "queues": ["q1"]})
    assert scoped.status_code == 201, scoped.text
    hs = api.as_key(scoped.json()["key"])

    def post(headers: dict[str, str], **body: Any) -> Any:
        body.setdefault("queue_name", "q1")
        body.setdefault("payload", {"n": 1})
        return api.client.post("/api/v1/jobs", json=body, headers=headers)

    with batch_sizes(api.state.creates) as sizes:
        answers = await asyncio.gather(
            *[post(h, payload={"i": i}) for i in range(10)],
            post(h, idempotency_key="same", payload={"first": 1}),
            post(h, idempotency_key="same", payload={"first": 2}),
            post(hs, queue_name="q1"),
            post(hs, queue_name="elsewhere"),
        )
    assert sum(sizes) == 14 and max(sizes) > 1, sizes
    assert [r.status_code for r in answers[:10]] == [201] * 10
    for i, r in enumerate(answers[:10]):
        assert (await get_job(api, h, r.json()["id"]))["payload"] == {"i": i}
    first, second = answers[10], answers[11]
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    assert answers[12].status_code == 201
    assert_error(answers[13], 403, "ACCESS_DENIED")
    listed = (await api.client.get("/api/v1/jobs?queue_name=q1&limit=100", headers=h)).json()
    assert len(listed) == 12  # ten, one idempotent pair, one through the scoped key


async def test_a_stale_key_in_a_batch_fails_only_its_own_request(
    settings: Any, db_url: str, tenant: dict[str, Any]
) -> None:
    """Two keys of one organization, both cached by a replica that then misses the NOTIFY of
    one key's revocation: the batch's key check fails, its items are retried one by one, and
    only the revoked key's request gets 401."""
    async for api in _api(settings, db_url):
        h = tenant["headers"]
        made = [await api.client.post("/api/v1/api-keys", json={"name": n}, headers=h)
                for n in ("keep", "revoke")]
        (keep_id, keep), (gone_id, gone) = [(m.json()["id"], m.json()["key"]) for m in made]
        ids = [await create_job(api, h) for _ in range(2)]
        jobs = await claim(api, api.as_key(keep), worker="w1", limit=2)
        assert {j["id"] for j in jobs} == set(ids)
        await claim(api, api.as_key(gone), queue="probe")  # cache the second key too
        assert api.state.listener is not None
        await api.state.listener.stop()  # this replica misses the revocation's NOTIFY
        resp = await api.client.delete(f"/api/v1/api-keys/{gone_id}", headers=h)
        assert resp.status_code == 204
        a, b = await asyncio.gather(
            ack(api, api.as_key(keep), jobs[0]["id"], "complete", worker_id="w1",
                lease_id=jobs[0]["lease_id"]),
            ack(api, api.as_key(gone), jobs[1]["id"], "complete", worker_id="w1",
                lease_id=jobs[1]["lease_id"]),
        )
        assert a.status_code == 200, a.text
        assert_error(b, 401, "UNAUTHORIZED")
        assert (await get_job(api, h, jobs[0]["id"]))["status"] == "completed"
        assert (await get_job(api, h, jobs[1]["id"]))["status"] == "processing"
        assert keep_id != gone_id


async def test_coalesced_creates_store_what_a_single_create_stores(
    api: Api, tenant: dict[str, Any]
) -> None:
    """The one-statement path (INSERT_JOBS_MANY) against the one-row path (INSERT_JOB, taken
    alone): every column the API shows must match, queue defaults and status included."""
    h = tenant["headers"]
    resp = await api.client.put("/api/v1/queues/defaults/config", headers=h,
                                 json={"max_retries": 7, "default_timeout": 42})
    assert resp.status_code in (200, 201), resp.text
    later = "2099-01-01T00:00:00Z"
    bodies = [
        {"queue_name": "defaults", "payload": {"a": 1}},
        {"queue_name": "q1", "payload": None, "priority": 5, "max_retries": 0,
         "timeout_seconds": 9, "tags": {"env": "t"}},
        {"queue_name": "q2", "payload": {"s": 1}, "scheduled_at": later,
         "expires_at": "2099-02-01T00:00:00Z"},
    ]
    shown = ("queue_name", "status", "payload", "priority", "max_retries", "timeout_seconds",
             "scheduled_at", "expires_at", "tags", "retry_count")

    async def shapes(answers: list[Any]) -> list[dict[str, Any]]:
        out = []
        for r in answers:
            assert r.status_code == 201, r.text
            job = await get_job(api, h, r.json()["id"])
            out.append({k: job.get(k) for k in shown})
        return out

    alone = [await api.client.post("/api/v1/jobs", json=b, headers=h) for b in bodies]
    with batch_sizes(api.state.creates) as sizes:
        together = await asyncio.gather(*[api.client.post("/api/v1/jobs", json=b, headers=h)
                                          for b in bodies])
    assert max(sizes) > 1, sizes
    expected = await shapes(alone)
    assert await shapes(together) == expected
    assert [e["status"] for e in expected] == ["pending", "pending", "scheduled"]
    assert (expected[0]["max_retries"], expected[0]["timeout_seconds"]) == (7, 42)
    hist = (await api.client.get(f"/api/v1/jobs/{together[2].json()['id']}/history",
                                 headers=h)).json()
    assert [(e["event_type"], e["details"]) for e in hist] == [
        ("created", {"queue_name": "q2", "status": "scheduled"})]


async def test_a_changed_but_valid_key_reruns_its_request_with_the_same_body(
    settings: Any, db_url: str, tenant: dict[str, Any]
) -> None:
    """The batch's key check fails for a cached key whose scope changed while this replica
    missed the NOTIFY; the request is authenticated again and run again — reading its body a
    second time (it answered 500 "Stream consumed" before the body was kept)."""
    async for api in _api(settings, db_url):
        h = tenant["headers"]
        made = await api.client.post("/api/v1/api-keys", json={"name": "k", "queues": ["q1"]},
                                     headers=h)
        key_id, key = made.json()["id"], made.json()["key"]
        job_id = await create_job(api, h)
        [job] = await claim(api, api.as_key(key), worker="w1")  # caches the key row
        assert api.state.listener is not None
        await api.state.listener.stop()
        resp = await api.client.put(f"/api/v1/api-keys/{key_id}", headers=h,
                                    json={"queues": ["q1", "q2"]})
        assert resp.status_code == 200, resp.text
        done = await ack(api, api.as_key(key), job_id, "complete", worker_id="w1",
                         lease_id=job["lease_id"], result={"twice": "read"})
        assert done.status_code == 200, done.text
        assert (await get_job(api, h, job_id))["result"] == {"twice": "read"}
        made = await api.client.post("/api/v1/jobs", headers=api.as_key(key),
                                     json={"queue_name": "q2", "payload": {"new": "scope"}})
        assert made.status_code == 201, made.text
