"""Idempotent creates (CONTRACT §8.5): one row per (org, key), under concurrency too."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import get_job


async def _count(api: Api, sql: str, *args: Any) -> int:
    async with api.state.pool.acquire() as c:
        value: int = await c.fetchval(sql, *args)
    return value


async def test_twenty_concurrent_creates_with_one_key(api: Api, tenant: dict[str, Any]) -> None:
    body = {"queue_name": "q1", "payload": {"n": 1}, "idempotency_key": "order-42"}
    responses = await asyncio.gather(
        *(api.client.post("/api/v1/jobs", json=body, headers=tenant["headers"]) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert len({b["id"] for b in bodies}) == 1
    assert sorted(b["created"] for b in bodies) == [False] * 19 + [True]
    for r in responses:
        assert r.json()["created"] is (r.status_code == 201)
    assert await _count(api, "SELECT count(*) FROM jobs") == 1
    assert await _count(api, "SELECT count(*) FROM job_history WHERE event_type = 'created'") == 1


async def test_hit_returns_existing_job_unchanged(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    first = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q1", "payload": {"v": 1}, "idempotency_key": "k", "priority": 5},
        headers=h,
    )
    assert first.status_code == 201
    job_id = first.json()["id"]
    original = await get_job(api, h, job_id)
    again = await api.client.post(
        "/api/v1/jobs",
        json={"queue_name": "other", "payload": {"v": 2}, "idempotency_key": "k", "priority": -5},
        headers=h,
    )
    assert again.status_code == 200 and again.json() == {"id": job_id, "created": False}
    after = await get_job(api, h, job_id)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in original.items() if k != "updated_at"
    }
    # keys are per organization
    other = await api.create_org()
    theirs = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q1", "payload": 1, "idempotency_key": "k"},
        headers=api.as_key(other["api_key"]["key"]),
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != job_id


async def test_bulk_duplicate_keys_within_and_across_batches(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    single = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q1", "payload": 0, "idempotency_key": "pre"}, headers=h
    )
    pre_id = single.json()["id"]
    jobs = [
        {"payload": 1, "idempotency_key": "a"},
        {"payload": 2, "idempotency_key": "b"},
        {"payload": 3, "idempotency_key": "a"},
        {"payload": 4},
        {"payload": 5, "idempotency_key": "pre"},
        {"payload": 6},
        {"payload": 7, "idempotency_key": "b"},
    ]
    resp = await api.client.post("/api/v1/jobs/bulk", json={"queue_name": "q1", "jobs": jobs}, headers=h)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert (data["total"], data["success_count"], data["failure_count"], data["failed"]) == (7, 7, 0, [])
    got = {s["index"]: s for s in data["succeeded"]}
    assert sorted(got) == list(range(7))
    assert got[2]["job_id"] == got[0]["job_id"] and got[2]["created"] is False and got[0]["created"] is True
    assert got[6]["job_id"] == got[1]["job_id"] and got[6]["created"] is False
    assert got[4] == {"index": 4, "job_id": pre_id, "created": False}
    assert got[3]["job_id"] != got[5]["job_id"] and got[3]["created"] and got[5]["created"]
    # the first item with a key wins
    assert (await get_job(api, h, got[0]["job_id"]))["payload"] == 1
    assert await _count(api, "SELECT count(*) FROM jobs") == 5

    again = await api.client.post(
        "/api/v1/jobs/bulk",
        json={"queue_name": "q1", "jobs": [{"payload": 9, "idempotency_key": "b"}, {"payload": 10, "idempotency_key": "c"}]},
        headers=h,
    )
    second = again.json()["succeeded"]
    assert second[0] == {"index": 0, "job_id": got[1]["job_id"], "created": False}
    assert second[1]["created"] is True
    assert await _count(api, "SELECT count(*) FROM jobs") == 6


async def test_concurrent_bulk_batches_with_overlapping_keys(api: Api, tenant: dict[str, Any]) -> None:
    """Overlapping keys in different orders must neither deadlock nor duplicate."""
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(30)]
    batches = []
    for _ in range(8):
        chosen = rng.sample(keys, 20)
        batches.append([{"payload": {"k": k}, "idempotency_key": k} for k in chosen])
    responses = await asyncio.gather(*(
        api.client.post("/api/v1/jobs/bulk", json={"queue_name": "q1", "jobs": b}, headers=tenant["headers"])
        for b in batches
    ))
    ids_by_key: dict[str, set[str]] = {}
    created = 0
    for batch, resp in zip(batches, responses, strict=True):
        assert resp.status_code == 200, resp.text
        for item in resp.json()["succeeded"]:
            ids_by_key.setdefault(batch[item["index"]]["idempotency_key"], set()).add(item["job_id"])
            created += item["created"]
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    rows = await _count(api, "SELECT count(*) FROM jobs")
    assert rows == len(ids_by_key) == created


async def test_bulk_insert_sql_takes_key_locks_in_one_order(conn: Any, db_url: str) -> None:
    """Regression: rows were inserted in request order, so two batches holding the same keys in
    different orders waited on each other's unique-index entries → DeadlockDetectedError (500)."""
    import uuid

    import asyncpg

    from spooled_backend.db.pool import _init_connection
    from spooled_backend.jobs import queries as q
    from spooled_backend.jobs.service import NewJob, insert_arguments

    org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('d', 'dl') RETURNING id")
    pool = await asyncpg.create_pool(db_url, min_size=8, max_size=8, init=_init_connection)
    rng = random.Random(1)
    try:
        for rnd in range(10):
            keys = [f"r{rnd}k{i}" for i in range(40)]

            async def one() -> None:
                chosen = rng.sample(keys, 30)
                jobs = [NewJob("q", {"k": k}, idempotency_key=k) for k in chosen]
                async with pool.acquire() as c:
                    await c.fetch(q.INSERT_JOBS_MANY, *insert_arguments(
                        org, jobs, [str(uuid.uuid4()) for _ in chosen], 3, 300))

            results = await asyncio.gather(*(one() for _ in range(8)), return_exceptions=True)
            assert [r for r in results if r is not None] == []
    finally:
        await pool.close()
    assert await conn.fetchval("SELECT count(*) FROM jobs") == await conn.fetchval(
        "SELECT count(DISTINCT idempotency_key) FROM jobs"
    )
