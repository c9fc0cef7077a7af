"""Workers over REST against real PostgreSQL (CONTRACT §7.9, §9.2, §19 #12)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import (
    RFC3339_Z,
    UUID_RE,
    ack,
    assert_error,
    claim,
    create_job,
    get_job,
    scoped_key,
    set_plan,
)

W = "/api/v1/workers"


async def register(api: Api, h: dict[str, str], status: int = 201, **body: Any) -> dict[str, Any]:
    body.setdefault("queue_name", "q1")
    body.setdefault("hostname", "host-1")
    resp = await api.client.post(f"{W}/register", json=body, headers=h)
    assert resp.status_code == status, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def heartbeat(api: Api, h: dict[str, str], worker_id: str, **body: Any) -> None:
    body.setdefault("current_jobs", 0)
    resp = await api.client.post(f"{W}/{worker_id}/heartbeat", json=body, headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {}  # never an empty body: the SDK cannot parse one


async def worker_row(api: Api, worker_id: str) -> dict[str, Any]:
    async with api.state.pool.acquire() as c:
        row = await c.fetchrow("SELECT * FROM workers WHERE id = $1", worker_id)
    assert row is not None
    return dict(row)


async def test_register_generated_and_supplied_ids(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    generated = await register(
        api, h, worker_type="python", version="1.6.0", max_concurrency=2, metadata={"pid": 1}
    )
    assert UUID_RE.match(generated["id"])
    assert generated == {
        "id": generated["id"],
        "queue_name": "q1",
        "lease_duration_secs": 30,
        "heartbeat_interval_secs": 10,
    }
    supplied = await register(api, h, worker_id="node-1.prod_a", queue_name="emails")
    assert supplied["id"] == "node-1.prod_a" and supplied["queue_name"] == "emails"
    worker = (await api.client.get(f"{W}/{generated['id']}", headers=h)).json()
    assert worker == {
        "id": generated["id"],
        "organization_id": tenant["org_id"],
        "queue_name": "q1",
        "queue_names": ["q1"],
        "hostname": "host-1",
        "worker_type": "python",
        "max_concurrency": 2,
        "current_jobs": 0,
        "status": "healthy",
        "last_heartbeat": worker["last_heartbeat"],
        "metadata": {"pid": 1},
        "version": "1.6.0",
        "registered_at": worker["registered_at"],
        "updated_at": worker["updated_at"],
        "jobs_processed": 0,
        "jobs_failed": 0,
        # CONTRACT §21 R5: the raw names too (the dashboard's worker page reads them)
        "max_concurrent_jobs": 2,
        "current_job_count": 0,
        "created_at": worker["registered_at"],
    }
    for key in ("last_heartbeat", "registered_at", "updated_at", "created_at"):
        assert RFC3339_Z.match(worker[key])


async def test_reregister_refreshes_the_worker(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="w-re", hostname="old", metadata={"v": 1}, max_concurrency=3)
    await heartbeat(api, h, "w-re", current_jobs=2, status="degraded")
    again = await register(api, h, worker_id="w-re", hostname="new", queue_name="q2", version="2")
    assert again["id"] == "w-re" and again["queue_name"] == "q2"
    worker = (await api.client.get(f"{W}/w-re", headers=h)).json()
    assert (worker["hostname"], worker["queue_names"], worker["max_concurrency"]) == (
        "new",
        ["q2"],
        5,
    )
    assert (worker["status"], worker["current_jobs"], worker["metadata"], worker["version"]) == (
        "healthy",
        0,
        {},
        "2",
    )


async def test_worker_id_owned_by_another_org_is_409(api: Api, tenant: dict[str, Any]) -> None:
    await register(api, tenant["headers"], worker_id="shared-name", hostname="ours")
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    await set_plan(api, other["organization"]["id"], "enterprise")
    body = await register(api, oh, status=409, worker_id="shared-name", hostname="theirs")
    assert body["code"] == "CONFLICT" and body["message"] == "Worker ID already in use"
    row = await worker_row(api, "shared-name")
    assert row["organization_id"] == tenant["org_id"] and row["hostname"] == "ours"


async def test_foreign_id_is_409_under_row_level_security(api: Api, tenant: dict[str, Any]) -> None:
    """With RLS active the other organization's row is invisible; still 409, never a 5xx."""
    from spooled_backend.core.context import AuthContext
    from spooled_backend.core.errors import AlreadyExists
    from spooled_backend.workers import service
    from spooled_backend.workers.schemas import RegisterWorker

    await register(api, tenant["headers"], worker_id="rls-w")
    other = await api.create_org()
    other_org = other["organization"]["id"]
    auth = AuthContext(organization_id=other_org, api_key_id="k", plan_tier="enterprise")
    body = RegisterWorker(queue_name="q1", hostname="h", worker_id="rls-w")
    async with api.state.pool.acquire() as c, c.transaction():
        await c.execute(
            "SELECT set_config('role', 'spooled_tenant', true), set_config('app.current_org_id', $1, true)",
            other_org,
        )
        assert await c.fetchval("SELECT count(*) FROM workers WHERE id = 'rls-w'") == 0
        try:
            await service.register_worker(c, api.state.settings, auth, body)
        except AlreadyExists as exc:
            assert exc.message == "Worker ID already in use"
        else:
            raise AssertionError("registering another organization's worker id must fail")
    assert (await worker_row(api, "rls-w"))["organization_id"] == tenant["org_id"]


async def test_max_workers_quota(api: Api) -> None:
    created = await api.create_org()  # free plan: max_workers = 1
    h = api.as_key(created["api_key"]["key"])
    await register(api, h, worker_id="a")
    body = await register(api, h, status=429, worker_id="b")
    assert body["code"] == "QUOTA_EXCEEDED" and body["resource"] == "workers"
    assert (body["current"], body["limit"]) == (1, 1)
    await register(api, h, worker_id="a", hostname="again")  # healthy re-register is free
    await heartbeat(api, h, "a", status="degraded")
    await register(api, h, worker_id="a")  # degraded re-register is free too
    await heartbeat(api, h, "a", status="draining")  # draining no longer counts …
    await register(api, h, worker_id="b")
    await register(api, h, status=429, worker_id="a")  # … so re-registering it is charged
    resp = await api.client.post(f"{W}/b/deregister", headers=h)
    assert resp.status_code == 204
    await register(api, h, worker_id="a")
    async with api.state.pool.acquire() as c:
        statuses = dict(await c.fetch("SELECT id, status FROM workers ORDER BY id"))
    assert statuses == {"a": "healthy", "b": "offline"}


async def test_list_summary_shape_and_order(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    for wid in ("w-1", "w-2", "w-3"):
        await register(api, h, worker_id=wid)
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE workers SET last_heartbeat = now() - interval '1 minute' WHERE id = 'w-3'"
        )
        await c.execute(
            "UPDATE workers SET last_heartbeat = now() + interval '1 second' WHERE id = 'w-2'"
        )
    listed = (await api.client.get(W, headers=h)).json()
    assert [w["id"] for w in listed] == ["w-2", "w-1", "w-3"]
    assert set(listed[0]) == {
        "id",
        "queue_name",
        "hostname",
        "status",
        "current_jobs",
        "max_concurrency",
        "last_heartbeat",
        "jobs_processed",
        "jobs_failed",
        "max_concurrent_jobs",
        "current_job_count",
        "registered_at",
        "created_at",
    }
    assert listed[0]["current_job_count"] == listed[0]["current_jobs"]
    assert listed[0]["max_concurrent_jobs"] == listed[0]["max_concurrency"]
    assert listed[0]["created_at"] == listed[0]["registered_at"]


async def test_job_counters_follow_acks(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    worker = await register(api, h, worker_id="counter")
    ok, bad = await create_job(api, h), await create_job(api, h, max_retries=0)
    jobs = {j["id"]: j for j in await claim(api, h, worker="counter", limit=2)}
    await ack(api, h, ok, "complete", worker_id="counter", lease_id=jobs[ok]["lease_id"])
    await ack(api, h, bad, "fail", worker_id="counter", lease_id=jobs[bad]["lease_id"])
    got = (await api.client.get(f"{W}/{worker['id']}", headers=h)).json()
    assert (got["jobs_processed"], got["jobs_failed"]) == (1, 1)


async def test_heartbeat_statuses_and_sticky_draining(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="hb", metadata={"keep": True})
    before = (await worker_row(api, "hb"))["last_heartbeat"]
    await heartbeat(api, h, "hb", current_jobs=3, status="degraded", metadata={"load": 0.9})
    row = await worker_row(api, "hb")
    assert (row["status"], row["current_job_count"], row["metadata"]) == (
        "degraded",
        3,
        {"load": 0.9},
    )
    assert row["last_heartbeat"] > before
    for reported, expected in (
        ("offline", "healthy"),
        ("bogus", "healthy"),
        (None, "healthy"),
        (7, "healthy"),
        ("draining", "draining"),
        (None, "draining"),
        ("offline", "draining"),
        ("nonsense", "draining"),
        ("healthy", "healthy"),
    ):
        body: dict[str, Any] = {} if reported is None else {"status": reported}
        await heartbeat(api, h, "hb", **body)
        assert (await worker_row(api, "hb"))["status"] == expected, (reported, expected)
    assert (await worker_row(api, "hb"))["metadata"] == {"load": 0.9}  # omitted → kept


async def test_deregister_releases_only_expired_leases(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="drain")
    expired_id = await create_job(api, h)
    live_id = await create_job(api, h)
    other_id = await create_job(api, h)
    jobs = {j["id"]: j for j in await claim(api, h, worker="drain", limit=2)}
    [other] = await claim(api, h, worker="someone-else")
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1::text[])",
            [expired_id, other_id],
        )
    resp = await api.client.post(f"{W}/drain/deregister", headers=h)
    assert resp.status_code == 204 and resp.content == b""
    assert (await worker_row(api, "drain"))["status"] == "offline"
    expired = await get_job(api, h, expired_id)
    assert (expired["status"], expired["retry_count"]) == ("pending", 1)
    assert expired["last_error"] == "Lease expired (worker timeout)" and expired["lease_id"] is None
    assert (await get_job(api, h, other_id))["status"] == "processing"  # another worker's job
    # The SDK drains after deregister: a live lease can still be completed.
    done = await ack(
        api, h, live_id, "complete", worker_id="drain", lease_id=jobs[live_id]["lease_id"]
    )
    assert done.status_code == 200 and done.json() == {"success": True}
    assert (await get_job(api, h, live_id))["status"] == "completed"
    again = await api.client.post(f"{W}/drain/deregister", headers=h)
    assert again.status_code == 204  # idempotent
    assert other["lease_id"]


async def test_deregister_leaves_other_orgs_jobs_with_the_same_worker_name(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="common")
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    their_job = await create_job(api, oh)
    await claim(api, oh, worker="common")  # claims do not check worker registration
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
    assert (await api.client.post(f"{W}/common/deregister", headers=h)).status_code == 204
    assert (await get_job(api, oh, their_job))["status"] == "processing"


async def test_other_org_cannot_see_or_touch_our_worker(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="private-w", metadata={"secret": 1})
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    assert (await api.client.get(W, headers=oh)).json() == []
    assert_error(await api.client.get(f"{W}/private-w", headers=oh), 404, "NOT_FOUND")
    assert_error(
        await api.client.post(
            f"{W}/private-w/heartbeat", json={"current_jobs": 9, "status": "draining"}, headers=oh
        ),
        404,
        "NOT_FOUND",
    )
    assert_error(await api.client.post(f"{W}/private-w/deregister", headers=oh), 404, "NOT_FOUND")
    row = await worker_row(api, "private-w")
    assert (row["status"], row["current_job_count"], row["metadata"]) == (
        "healthy",
        0,
        {"secret": 1},
    )


async def test_scoped_keys(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="in-scope", queue_name="mine")
    await register(api, h, worker_id="out-of-scope", queue_name="theirs")
    scoped = await scoped_key(api, tenant["org_id"], ["mine"])
    assert [w["id"] for w in (await api.client.get(W, headers=scoped)).json()] == ["in-scope"]
    assert (await api.client.get(f"{W}/in-scope", headers=scoped)).status_code == 200
    assert_error(await api.client.get(f"{W}/out-of-scope", headers=scoped), 404, "NOT_FOUND")
    assert_error(
        await api.client.post(
            f"{W}/out-of-scope/heartbeat", json={"current_jobs": 1}, headers=scoped
        ),
        404,
        "NOT_FOUND",
    )
    assert_error(
        await api.client.post(f"{W}/out-of-scope/deregister", headers=scoped), 404, "NOT_FOUND"
    )
    assert (await worker_row(api, "out-of-scope"))["status"] == "healthy"
    body = await register(api, scoped, status=403, queue_name="theirs")
    assert body["code"] == "ACCESS_DENIED"
    await heartbeat(api, scoped, "in-scope", current_jobs=1)


async def test_bad_input_answers_contract_4xx(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await register(api, h, worker_id="valid")
    bad_register: list[tuple[Any, int]] = [
        ({"hostname": "h"}, 422),
        ({"queue_name": "q1"}, 422),
        ({"queue_name": "q1", "hostname": "-bad"}, 400),
        ({"queue_name": "q1", "hostname": "has space"}, 400),
        ({"queue_name": "q1", "hostname": ""}, 400),
        ({"queue_name": ".q", "hostname": "h"}, 400),
        ({"queue_name": "q1", "hostname": "h", "worker_id": "bad/id"}, 400),
        ({"queue_name": "q1", "hostname": "h", "worker_id": "x" * 129}, 400),
        ({"queue_name": "q1", "hostname": "h", "max_concurrency": 0}, 400),
        ({"queue_name": "q1", "hostname": "h", "max_concurrency": 101}, 400),
        ({"queue_name": "q1", "hostname": "h", "max_concurrency": "5"}, 422),
        ({"queue_name": "q1", "hostname": "h", "metadata": [1]}, 422),
        ({"queue_name": "q1", "hostname": "h", "metadata": {"x": "y" * 70000}}, 400),
        ({"queue_name": "q1", "hostname": "h", "worker_type": "t" * 51}, 400),
        ({"queue_name": "q1", "hostname": "h", "version": "v" * 51}, 400),
        ({"queue_name": "q1", "hostname": "h", "metadata": {"k": "nul\u0000"}}, 400),
        ([1], 422),
    ]
    for body, status in bad_register:
        assert_error(
            await api.client.post(f"{W}/register", json=body, headers=h), status, "VALIDATION_ERROR"
        )
    assert_error(
        await api.client.post(
            f"{W}/register", content=b"", headers={**h, "Content-Type": "application/json"}
        ),
        400,
        "INVALID_JSON",
    )
    bad_beat: list[tuple[Any, int]] = [
        ({}, 422),
        ({"current_jobs": -1}, 400),
        ({"current_jobs": 1001}, 400),
        ({"current_jobs": "1"}, 422),
        ({"current_jobs": 1, "metadata": "x"}, 422),
    ]
    for body, status in bad_beat:
        assert_error(
            await api.client.post(f"{W}/valid/heartbeat", json=body, headers=h),
            status,
            "VALIDATION_ERROR",
        )
    for wid in ("nul%00id", "x" * 200, "semi;colon", "%E2%9C%93"):
        assert_error(await api.client.get(f"{W}/{wid}", headers=h), 404, "NOT_FOUND")
        assert_error(
            await api.client.post(f"{W}/{wid}/heartbeat", json={"current_jobs": 0}, headers=h),
            404,
            "NOT_FOUND",
        )
        assert_error(await api.client.post(f"{W}/{wid}/deregister", headers=h), 404, "NOT_FOUND")
    assert_error(await api.client.get(W), 401, "UNAUTHORIZED")
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM workers") == 1
