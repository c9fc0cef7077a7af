"""Job dependencies (CONTRACT §8.2, §8.9, §21 R7/R11): release in the parent's completing
transaction, cancellation on every path that ends a parent unsuccessfully, the
`GET`/`POST /jobs/{id}/dependencies` routes with both SDKs' field names, bad input, races."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from spooled_backend.core.context import AuthContext
from spooled_backend.jobs import dependencies, service
from spooled_backend.scheduler import recovery
from spooled_backend.workers import liveness
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

MISSING = "00000000-0000-4000-8000-000000000000"


class Recorder:
    """An `Events` sink that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, *args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c[1:] for c in self.calls if c[0] == name]


async def _sql(api: Api, query: str, *args: Any) -> list[asyncpg.Record]:
    async with api.state.pool.acquire() as c:
        return await c.fetch(query, *args)


def _cancelled_by(parent: str, status: str) -> str:
    return f"Cancelled: parent job {parent} ended {status}, so this job can no longer run"


async def _claim_one(api: Api, h: dict[str, str], job_id: str, queue: str = "q1") -> dict[str, Any]:
    jobs = await claim(api, h, queue=queue, limit=10)
    mine = [j for j in jobs if j["id"] == job_id]
    assert mine, (job_id, jobs)
    return mine[0]


async def test_child_of_parent_job_is_released_when_the_parent_completes(
    api: Api, tenant: dict[str, Any]
) -> None:
    """R11: the child waits like an `all` dependency and is claimable right after the complete."""
    h = tenant["headers"]
    parent = await create_job(api, h)
    child = await create_job(api, h, parent_job_id=parent)
    job = await get_job(api, h, child)
    assert (job["status"], job["dependencies_met"], job["parent_job_id"]) == ("pending", False, parent)
    leased = await claim(api, h, limit=10)
    assert [j["id"] for j in leased] == [parent], "the waiting child must not be handed out"
    resp = await ack(api, h, parent, "complete", worker_id="w1", lease_id=leased[0]["lease_id"])
    assert resp.status_code == 200
    assert (await get_job(api, h, child))["dependencies_met"] is True
    assert [j["id"] for j in await claim(api, h, limit=10)] == [child]
    # a child of an already completed parent starts released
    late = await create_job(api, h, parent_job_id=parent)
    assert (await get_job(api, h, late))["dependencies_met"] is True


async def test_release_happens_inside_the_completing_transaction(api: Api, tenant: dict[str, Any]) -> None:
    """Before the parent's transaction commits, the same transaction already sees the child
    claimable; a rollback leaves both as they were."""
    h = tenant["headers"]
    parent = await create_job(api, h)
    child = await create_job(api, h, parent_job_id=parent)
    lease = (await claim(api, h))[0]["lease_id"]
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    events = Recorder()
    async with api.state.pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        await service.complete_job(c, auth, parent, "w1", lease, None, events)
        assert await c.fetchval("SELECT dependencies_met FROM jobs WHERE id = $1", child) is True
        # another connection does not see it yet
        other = await _sql(api, "SELECT dependencies_met FROM jobs WHERE id = $1", child)
        assert other[0]["dependencies_met"] is False
        await tx.rollback()
    assert (await get_job(api, h, child))["dependencies_met"] is False
    assert events.named("job_released") == [(tenant["org_id"], child, "q1")]


async def test_final_failure_cancels_children_naming_the_parent_but_a_retry_does_not(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, max_retries=1)
    child = await create_job(api, h, parent_job_id=parent)
    grandchild = await create_job(api, h, parent_job_id=child)
    lease = (await claim(api, h))[0]["lease_id"]
    resp = await ack(api, h, parent, "fail", worker_id="w1", lease_id=lease, error="first")
    assert resp.json()["will_retry"] is True
    assert (await get_job(api, h, child))["status"] == "pending", "a parent that will retry is not terminal"
    await _sql(api, "UPDATE jobs SET scheduled_at = now() WHERE id = $1", parent)
    lease = (await claim(api, h))[0]["lease_id"]
    resp = await ack(api, h, parent, "fail", worker_id="w1", lease_id=lease, error="second")
    assert resp.json()["will_retry"] is False
    kid = await get_job(api, h, child)
    assert (kid["status"], kid["last_error"]) == ("cancelled", _cancelled_by(parent, "deadletter"))
    assert kid["completed_at"] is not None
    grand = await get_job(api, h, grandchild)
    assert (grand["status"], grand["last_error"]) == ("cancelled", _cancelled_by(child, "cancelled"))
    hist = (await api.client.get(f"/api/v1/jobs/{child}/history", headers=h)).json()
    assert hist[-1]["event_type"] == "cancelled"
    assert hist[-1]["details"] == {"reason": "dependency", "error": _cancelled_by(parent, "deadletter")}


async def test_cancelling_the_parent_cancels_the_child(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h)
    child = await create_job(api, h, parent_job_id=parent)
    assert (await api.client.delete(f"/api/v1/jobs/{parent}", headers=h)).status_code == 204
    kid = await get_job(api, h, child)
    assert (kid["status"], kid["last_error"]) == ("cancelled", _cancelled_by(parent, "cancelled"))


async def test_lease_recovery_deadletter_cancels_children(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, max_retries=0)
    child = await create_job(api, h, parent_job_id=parent)
    await claim(api, h)
    await _sql(api, "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1", parent)
    events = Recorder()
    async with api.state.pool.acquire() as c:
        assert await recovery.recover_expired_leases(c, events) == 1
    kid = await get_job(api, h, child)
    assert (kid["status"], kid["last_error"]) == ("cancelled", _cancelled_by(parent, "deadletter"))
    assert events.named("job_status") == [(tenant["org_id"], child, "q1", "pending", "cancelled")]


async def test_lease_recovery_retry_leaves_children_waiting(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, max_retries=2)
    child = await create_job(api, h, parent_job_id=parent)
    await claim(api, h)
    await _sql(api, "UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1", parent)
    async with api.state.pool.acquire() as c:
        assert await recovery.recover_expired_leases(c) == 1
    kid = await get_job(api, h, child)
    assert (kid["status"], kid["dependencies_met"]) == ("pending", False)


async def test_offline_worker_release_cancels_children(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h, max_retries=0)
    child = await create_job(api, h, parent_job_id=parent)
    await claim(api, h, worker="gone-worker")
    async with api.state.pool.acquire() as c:
        moved = await liveness.release_worker_jobs(
            c, [(tenant["org_id"], "gone-worker")], only_expired=False
        )
    assert moved == 1
    kid = await get_job(api, h, child)
    assert kid["status"] == "cancelled" and kid["last_error"] == _cancelled_by(parent, "deadletter")


async def test_expired_parent_cancels_children(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    parent = await create_job(api, h)
    child = await create_job(api, h, parent_job_id=parent)
    await _sql(api, "UPDATE jobs SET expires_at = now() - interval '1 s' WHERE id = $1", parent)
    async with api.state.pool.acquire() as c:
        assert await recovery.expire_jobs(c) == 1
    kid = await get_job(api, h, child)
    assert (kid["status"], kid["last_error"]) == ("cancelled", _cancelled_by(parent, "cancelled"))


async def test_any_child_survives_a_dead_parent_and_purge_releases_orphans(
    api: Api, tenant: dict[str, Any]
) -> None:
    """`any` child of P1 (dead-lettered) and P2 (pending): waiting. DLQ purge of P1 leaves only
    P2 as its dependency; completing P2 releases it. A child whose only dependency was purged
    is released (orphans, CONTRACT §8.9)."""
    h = tenant["headers"]
    p1 = await create_job(api, h, max_retries=0, priority=5)
    p2 = await create_job(api, h)
    child = await create_job(api, h)
    resp = await api.client.post(
        f"/api/v1/jobs/{child}/dependencies", json={"depends_on": [p1, p2], "dependency_mode": "any"}, headers=h
    )
    assert resp.json()["dependencies_added"] == 2 and resp.json()["dependencies_met"] is False
    lease = (await claim(api, h))[0]["lease_id"]
    await ack(api, h, p1, "fail", worker_id="w1", lease_id=lease)
    assert (await get_job(api, h, p1))["status"] == "deadletter"
    kid = await get_job(api, h, child)
    assert (kid["status"], kid["dependencies_met"]) == ("pending", False), "any: P2 may still succeed"
    # orphan: a job whose only dependency is purged
    orphan = await create_job(api, h)
    await _sql(api, "INSERT INTO job_dependencies (organization_id, job_id, depends_on_job_id) VALUES ($1, $2, $3)",
               tenant["org_id"], orphan, p1)
    await _sql(api, "UPDATE jobs SET dependencies_met = false WHERE id = $1", orphan)
    resp = await api.client.post("/api/v1/jobs/dlq/purge", json={"confirm": True}, headers=h)
    assert resp.json() == {"purged_count": 1}
    assert (await get_job(api, h, orphan))["dependencies_met"] is True
    deps = (await api.client.get(f"/api/v1/jobs/{child}/dependencies", headers=h)).json()
    assert [d["job_id"] for d in deps["dependencies"]] == [p2]


async def test_a_dlq_retried_parent_gates_new_children_until_it_completes(api: Api, tenant: dict[str, Any]) -> None:
    """A parent back from the DLQ is pending again: a new child waits for it (CONTRACT §8.9)."""
    h = tenant["headers"]
    parent = await create_job(api, h, max_retries=0)
    lease = (await claim(api, h))[0]["lease_id"]
    await ack(api, h, parent, "fail", worker_id="w1", lease_id=lease)
    retried = await api.client.post("/api/v1/jobs/dlq/retry", json={"job_ids": [parent]}, headers=h)
    assert retried.json()["retried_jobs"] == [parent]
    child = await create_job(api, h, parent_job_id=parent)
    assert (await get_job(api, h, child))["dependencies_met"] is False
    lease = (await claim(api, h))[0]["lease_id"]
    await ack(api, h, parent, "complete", worker_id="w1", lease_id=lease)
    assert (await get_job(api, h, child))["dependencies_met"] is True


async def test_get_dependencies_shape_for_the_dashboard_and_sdk(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    plain = await create_job(api, h)
    resp = await api.client.get(f"/api/v1/jobs/{plain}/dependencies", headers=h)
    assert resp.status_code == 200
    assert resp.json() == {"job_id": plain, "dependency_mode": "all", "dependencies_met": True,
                           "dependencies": [], "dependents": []}
    parent = await create_job(api, h, queue_name="qa")
    child = await create_job(api, h, queue_name="qa", parent_job_id=parent)
    body = (await api.client.get(f"/api/v1/jobs/{child}/dependencies", headers=h)).json()
    assert body == {
        "job_id": child, "dependency_mode": "all", "dependencies_met": False,
        "dependencies": [{"job_id": parent, "queue_name": "qa", "status": "pending", "completed": False,
                          "dependency_type": "all"}],
        "dependents": [],
    }
    up = (await api.client.get(f"/api/v1/jobs/{parent}/dependencies", headers=h)).json()
    assert [d["job_id"] for d in up["dependents"]] == [child] and up["dependencies"] == []
    assert_error(await api.client.get(f"/api/v1/jobs/{MISSING}/dependencies", headers=h), 404, "NOT_FOUND")
    assert_error(await api.client.get("/api/v1/jobs/not-a-uuid/dependencies", headers=h), 404, "NOT_FOUND")


async def test_add_dependencies_python_and_node_field_names(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    a, b, c = [await create_job(api, h) for _ in range(3)]
    target = await create_job(api, h)
    # Python SDK: depends_on + dependency_mode
    resp = await api.client.post(f"/api/v1/jobs/{target}/dependencies",
                                 json={"depends_on": [a, b], "dependency_mode": "all"}, headers=h)
    assert resp.status_code == 200
    assert resp.json() == {"job_id": target, "dependencies_added": 2, "added_count": 2,
                           "dependencies_met": False, "dependency_mode": "all", "status": "pending"}
    # Node SDK: depends_on_job_ids + dependency_type; an existing edge is not counted again
    resp = await api.client.post(f"/api/v1/jobs/{target}/dependencies",
                                 json={"depends_on_job_ids": [b, c], "dependency_type": "any"}, headers=h)
    assert resp.json()["dependencies_added"] == 1 and resp.json()["dependency_mode"] == "any"
    rows = await _sql(api, "SELECT depends_on_job_id, dependency_type FROM job_dependencies WHERE job_id = $1 "
                           "ORDER BY depends_on_job_id", target)
    assert {r["depends_on_job_id"] for r in rows} == {a, b, c}
    # any: one completed dependency releases it
    leased = {j["id"]: j for j in await claim(api, h, limit=10)}
    assert target not in leased
    await ack(api, h, b, "complete", worker_id="w1", lease_id=leased[b]["lease_id"])
    assert (await get_job(api, h, target))["dependencies_met"] is True


async def test_add_dependencies_skips_self_and_cycles_silently(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    a = await create_job(api, h)
    b = await create_job(api, h)
    c = await create_job(api, h)
    # b waits for a, c waits for b
    await api.client.post(f"/api/v1/jobs/{b}/dependencies", json={"depends_on": [a]}, headers=h)
    await api.client.post(f"/api/v1/jobs/{c}/dependencies", json={"depends_on": [b]}, headers=h)
    before = await table_fingerprint(api.state.pool)
    # a → c would close a → c → b → a; a → a is a self edge: both skipped, nothing else changes
    resp = await api.client.post(f"/api/v1/jobs/{a}/dependencies", json={"depends_on": [c, a]}, headers=h)
    assert resp.status_code == 200
    assert resp.json()["dependencies_added"] == 0 and resp.json()["dependencies_met"] is True
    rows = await _sql(api, "SELECT count(*) AS n FROM job_dependencies WHERE job_id = $1", a)
    assert rows[0]["n"] == 0
    assert (await table_fingerprint(api.state.pool))[1:] == before[1:]


async def test_add_dependencies_bad_input_writes_nothing(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    target = await create_job(api, h)
    mine = await create_job(api, h)
    other_org = await api.create_org()
    foreign = await create_job(api, api.as_key(other_org["api_key"]["key"]))
    url = f"/api/v1/jobs/{target}/dependencies"
    before = await table_fingerprint(api.state.pool)
    cases = [
        ({"depends_on": [mine, foreign]}, 404, "NOT_FOUND"),        # another org's job
        ({"depends_on": [MISSING]}, 404, "NOT_FOUND"),
        ({"depends_on": ["not-a-uuid"]}, 404, "NOT_FOUND"),
        ({"depends_on": []}, 400, "VALIDATION_ERROR"),
        ({"depends_on": [mine] * 101}, 400, "VALIDATION_ERROR"),
        ({"depends_on": [mine], "dependency_mode": "some"}, 400, "VALIDATION_ERROR"),
        ({"dependency_mode": "all"}, 422, "VALIDATION_ERROR"),
        ({"depends_on": mine}, 422, "VALIDATION_ERROR"),
        ({"depends_on": [1]}, 422, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        assert_error(await api.client.post(url, json=body, headers=h), status, code)
    assert_error(await api.client.post(f"/api/v1/jobs/{foreign}/dependencies", json={"depends_on": [mine]},
                                       headers=h), 404, "NOT_FOUND")
    huge = b'{"depends_on": ["' + b"a" * (6 * 1024 * 1024) + b'"]}'
    assert_error(await api.client.post(url, content=huge, headers={**h, "content-type": "application/json"}),
                 413, "PAYLOAD_TOO_LARGE")
    assert_error(await api.client.post(url, content=b"", headers={**h, "content-type": "application/json"}),
                 400, "INVALID_JSON")
    assert await table_fingerprint(api.state.pool) == before
    # a job that already runs cannot be made to wait
    lease = await claim(api, h, limit=10)
    running = lease[0]["id"]
    other = mine if running != mine else target
    assert_error(await api.client.post(f"/api/v1/jobs/{running}/dependencies", json={"depends_on": [other]},
                                       headers=h), 409, "CONFLICT")


async def test_scoped_key_sees_and_adds_only_in_scope_dependencies(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    secret = await create_job(api, h, queue_name="secret")
    visible = await create_job(api, h, queue_name="open")
    child = await create_job(api, h, queue_name="open")
    await api.client.post(f"/api/v1/jobs/{child}/dependencies", json={"depends_on": [secret, visible]}, headers=h)
    sk = await scoped_key(api, tenant["org_id"], ["open"])
    body = (await api.client.get(f"/api/v1/jobs/{child}/dependencies", headers=sk)).json()
    assert [d["job_id"] for d in body["dependencies"]] == [visible]
    assert_error(await api.client.get(f"/api/v1/jobs/{secret}/dependencies", headers=sk), 404, "NOT_FOUND")
    other = await create_job(api, h, queue_name="open")
    assert_error(await api.client.post(f"/api/v1/jobs/{other}/dependencies", json={"depends_on": [secret]},
                                       headers=sk), 404, "NOT_FOUND")


async def test_parent_completing_while_a_dependent_is_added(api: Api, tenant: dict[str, Any]) -> None:
    """Race the parent's complete against `POST /jobs/{child}/dependencies` on two connections,
    in both orders: the child always ends released, never stuck waiting."""
    h = tenant["headers"]
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    for round_no in range(24):
        parent = await create_job(api, h, queue_name="race")
        child = await create_job(api, h, queue_name="race-kids")
        lease = (await claim(api, h, queue="race"))[0]["lease_id"]

        async def complete(delay: float, parent: str = parent, lease: str = lease) -> None:
            async with api.state.pool.acquire() as c, c.transaction():
                await service.complete_job(c, auth, parent, "w1", lease, None, Recorder())
                await asyncio.sleep(delay)

        async def add(delay: float, child: str = child, parent: str = parent) -> dict[str, Any]:
            async with api.state.pool.acquire() as c, c.transaction():
                out = await dependencies.add_dependencies(c, auth, child, [parent], "all", Recorder())
                await asyncio.sleep(delay)
                return out

        first, second = (0.02, 0.0) if round_no % 2 else (0.0, 0.02)
        if round_no % 3 == 0:
            first = second = 0.0
        await asyncio.gather(complete(first), add(second))
        kid = await get_job(api, h, child)
        assert (kid["status"], kid["dependencies_met"]) == ("pending", True), round_no


async def test_two_parents_of_a_join_completing_at_once_release_it(api: Api, tenant: dict[str, Any]) -> None:
    """Diamond join: both parents complete in concurrent transactions; exactly the later one
    releases the child (it locks the child, then reads the other parent's committed status)."""
    h = tenant["headers"]
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    for round_no in range(16):
        left = await create_job(api, h, queue_name="join")
        right = await create_job(api, h, queue_name="join")
        child = await create_job(api, h, queue_name="join-kids")
        await api.client.post(f"/api/v1/jobs/{child}/dependencies", json={"depends_on": [left, right]}, headers=h)
        leases = {j["id"]: j["lease_id"] for j in await claim(api, h, queue="join", limit=2)}
        recorders = [Recorder(), Recorder()]

        async def complete(job: str, rec: Recorder, delay: float, leases: dict[str, str] = leases) -> None:
            async with api.state.pool.acquire() as c, c.transaction():
                await service.complete_job(c, auth, job, "w1", leases[job], None, rec)
                await asyncio.sleep(delay)

        await asyncio.gather(complete(left, recorders[0], 0.01 * (round_no % 2)),
                             complete(right, recorders[1], 0.01 * (1 - round_no % 2)))
        assert (await get_job(api, h, child))["dependencies_met"] is True, round_no
        released = [r.named("job_released") for r in recorders]
        assert sorted(len(r) for r in released) == [0, 1], released


async def test_backstop_sweep_settles_what_no_transition_settled(api: Api, tenant: dict[str, Any]) -> None:
    """A parent deleted or ended by a path that did not settle (raw SQL here, e.g. a queue
    delete) leaves its child waiting; the 10 s sweep releases or cancels it, and finishes a
    workflow left running with nothing active (CONTRACT §15)."""
    h = tenant["headers"]
    events = Recorder()
    async with api.state.pool.acquire() as c:
        assert await dependencies.sweep_dependencies(c, events) == 0
    gone_parent = await create_job(api, h)
    orphan = await create_job(api, h, parent_job_id=gone_parent)
    dead_parent = await create_job(api, h)
    doomed = await create_job(api, h, parent_job_id=dead_parent)
    wf = (await api.client.post("/api/v1/workflows", json={"name": "stuck", "jobs": [
        {"key": "a", "queue_name": "q1", "payload": {}}]}, headers=h)).json()
    await _sql(api, "DELETE FROM jobs WHERE id = $1", gone_parent)
    await _sql(api, "UPDATE jobs SET status = 'deadletter' WHERE id = $1", dead_parent)
    await _sql(api, "UPDATE jobs SET status = 'completed' WHERE id = $1", wf["job_ids"][0]["job_id"])
    async with api.state.pool.acquire() as c, c.transaction():
        assert await dependencies.sweep_dependencies(c, events) == 3
    assert (await get_job(api, h, orphan))["dependencies_met"] is True
    kid = await get_job(api, h, doomed)
    assert (kid["status"], kid["last_error"]) == ("cancelled", _cancelled_by(dead_parent, "deadletter"))
    status = (await api.client.get(f"/api/v1/workflows/{wf['workflow_id']}", headers=h)).json()["status"]
    assert status == "completed"
    assert [c[1] for c in events.named("workflow_completed")] == [wf["workflow_id"]]
    async with api.state.pool.acquire() as c:
        assert await dependencies.sweep_dependencies(c, events) == 0
