"""Workflows over REST (CONTRACT §7.11, §9.4, §19 row 16): create as one transaction, progress,
failure propagation, cancel, retry, the Node SDK's workflow-job routes, bad input."""

from __future__ import annotations

from typing import Any

from spooled_backend.workflows.schemas import MAX_WORKFLOW_JOBS
from tests.conftest import Api
from tests.integration.jobs_support import (
    RFC3339_Z,
    UUID_RE,
    ack,
    assert_error,
    claim,
    get_job,
    scoped_key,
    set_plan,
    table_fingerprint,
)


class Tap:
    """Wraps the app's event bus and records the dependency/workflow calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, *args))
            return target(*args, **kwargs)

        return call

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c[1:] for c in self.calls if c[0] == name]


DIAMOND = {
    "name": "etl (nightly)",
    "description": "extract, two transforms, load",
    "metadata": {"team": "data"},
    "jobs": [
        {"key": "extract", "queue_name": "wf", "payload": {"step": "extract"}},
        {"key": "clean", "queue_name": "wf", "payload": {"step": "clean"}, "depends_on": ["extract"]},
        {"key": "enrich", "queue_name": "wf", "payload": {"step": "enrich"}, "depends_on": ["extract"],
         "priority": 5},
        {"key": "load", "queue_name": "wf", "payload": {"step": "load"}, "depends_on": ["clean", "enrich"]},
    ],
}


async def _create(api: Api, h: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.client.post("/api/v1/workflows", json=body, headers=h)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _workflow(api: Api, h: dict[str, str], wf: str) -> dict[str, Any]:
    resp = await api.client.get(f"/api/v1/workflows/{wf}", headers=h)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _run(api: Api, h: dict[str, str], job_id: str, outcome: str = "complete", queue: str = "wf") -> None:
    leased = {j["id"]: j for j in await claim(api, h, queue=queue, limit=10)}
    assert job_id in leased, (job_id, list(leased))
    others = [other for other in leased if other != job_id]
    if others:  # give back what we did not mean to run
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE jobs SET status = 'pending', lease_expires_at = NULL, assigned_worker_id = NULL "
                            "WHERE id = ANY($1::text[])", others)
    body: dict[str, Any] = {"worker_id": "w1", "lease_id": leased[job_id]["lease_id"]}
    if outcome == "complete":
        body["result"] = {"done": job_id}
    resp = await ack(api, h, job_id, outcome, **body)
    assert resp.status_code == 200, resp.text


async def test_diamond_runs_in_order_and_completes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    tap = Tap(api.state.events)
    api.state.events = tap  # type: ignore[assignment]
    created = await _create(api, h, DIAMOND)
    assert UUID_RE.match(created["workflow_id"]) and created["status"] == "pending"
    ids = {m["key"]: m["job_id"] for m in created["job_ids"]}
    assert [m["key"] for m in created["job_ids"]] == ["extract", "clean", "enrich", "load"]
    wf = created["workflow_id"]

    detail = await _workflow(api, h, wf)
    assert detail["status"] == "pending" and detail["progress"] == {
        "total": 4, "completed": 0, "failed": 0, "pending": 4, "processing": 0}
    assert (detail["total_jobs"], detail["completed_jobs"], detail["progress_percent"]) == (4, 0, 0.0)
    assert detail["name"] == "etl (nightly)" and detail["metadata"] == {"team": "data"}
    assert RFC3339_Z.match(detail["created_at"]) and detail["started_at"] is None
    jobs = {j["key"]: j for j in detail["jobs"]}
    assert [j["key"] for j in detail["jobs"]] == ["extract", "clean", "enrich", "load"]
    assert jobs["extract"]["dependencies_met"] is True and jobs["load"]["dependencies_met"] is False
    assert jobs["load"]["depends_on"] == sorted([ids["clean"], ids["enrich"]])
    assert jobs["enrich"]["priority"] == 5 and jobs["clean"]["priority"] == 0
    assert (jobs["clean"]["queue"], jobs["clean"]["job_type"], jobs["clean"]["timeout_ms"]) == ("wf", "job", 300000)
    assert jobs["clean"]["error"] is None and jobs["clean"]["workflow_id"] == wf
    assert sorted((e["parent_job_id"], e["child_job_id"]) for e in detail["dependencies"]) == sorted([
        (ids["extract"], ids["clean"]), (ids["extract"], ids["enrich"]),
        (ids["clean"], ids["load"]), (ids["enrich"], ids["load"])])
    job = await get_job(api, h, ids["load"])
    assert (job["workflow_id"], job["dependency_mode"], job["status"]) == (wf, "all", "pending")

    # only the root is claimable
    assert [j["id"] for j in await claim(api, h, queue="wf", limit=10)] == [ids["extract"]]
    assert (await _workflow(api, h, wf))["status"] == "running"
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET status = 'pending', assigned_worker_id = NULL WHERE id = $1", ids["extract"])
    await _run(api, h, ids["extract"])
    assert {j["id"] for j in await claim(api, h, queue="wf", limit=10)} == {ids["clean"], ids["enrich"]}
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET status = 'pending', assigned_worker_id = NULL WHERE id = ANY($1::text[])",
                        [ids["clean"], ids["enrich"]])
    await _run(api, h, ids["clean"])
    assert (await get_job(api, h, ids["load"]))["dependencies_met"] is False, "load waits for both"
    await _run(api, h, ids["enrich"])
    mid = await _workflow(api, h, wf)
    assert mid["status"] == "running" and mid["progress"]["completed"] == 3 and mid["progress_percent"] == 75.0
    await _run(api, h, ids["load"])
    done = await _workflow(api, h, wf)
    assert done["status"] == "completed" and done["progress_percent"] == 100.0
    assert RFC3339_Z.match(done["completed_at"]) and RFC3339_Z.match(done["started_at"])
    assert {j["key"]: j["result"] for j in done["jobs"]}["load"] == {"done": ids["load"]}
    assert tap.named("workflow_completed") == [(tenant["org_id"], wf, "etl (nightly)", 4, 4, 0)]
    assert tap.named("workflow_failed") == []
    assert sorted(c[1] for c in tap.named("job_released")) == sorted([ids["clean"], ids["enrich"], ids["load"]])
    listed = (await api.client.get("/api/v1/workflows", headers=h)).json()
    assert [(w["id"], w["status"], w["total_jobs"], w["completed_jobs"]) for w in listed] == [(wf, "completed", 4, 4)]


async def test_failing_branch_cancels_dependents_fails_workflow_and_retry_restores(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    tap = Tap(api.state.events)
    api.state.events = tap  # type: ignore[assignment]
    body = {**DIAMOND, "jobs": [dict(j, max_retries=0) for j in DIAMOND["jobs"]]}
    created = await _create(api, h, body)
    wf, ids = created["workflow_id"], {m["key"]: m["job_id"] for m in created["job_ids"]}
    await _run(api, h, ids["extract"])
    await _run(api, h, ids["clean"], "fail")
    load = await get_job(api, h, ids["load"])
    assert load["status"] == "cancelled"
    assert load["last_error"] == f"Cancelled: parent job {ids['clean']} ended deadletter, so this job can no longer run"
    assert (await _workflow(api, h, wf))["status"] == "running", "enrich is still pending"
    assert tap.named("workflow_failed") == []
    await _run(api, h, ids["enrich"])
    failed = await _workflow(api, h, wf)
    assert failed["status"] == "failed" and RFC3339_Z.match(failed["completed_at"])
    assert failed["progress"] == {"total": 4, "completed": 2, "failed": 2, "pending": 0, "processing": 0}
    assert (failed["completed_jobs"], failed["failed_jobs"]) == (2, 1)
    by_key = {j["key"]: j for j in failed["jobs"]}
    assert by_key["clean"]["error"] == {"type": "JobError", "message": "boom", "stack": None}
    assert tap.named("workflow_failed") == [(tenant["org_id"], wf, "etl (nightly)", 4, 2, 1)]
    listed = (await api.client.get("/api/v1/workflows?status=failed", headers=h)).json()
    assert [w["id"] for w in listed] == [wf]
    assert (await api.client.get("/api/v1/workflows?status=completed", headers=h)).json() == []

    # retry: clean and load back to pending; clean runs at once, load waits for it again
    resp = await api.client.post(f"/api/v1/workflows/{wf}/retry", headers=h)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["status"], out["completed_jobs"], out["failed_jobs"], out["completed_at"]) == ("running", 2, 0, None)
    clean, load = await get_job(api, h, ids["clean"]), await get_job(api, h, ids["load"])
    assert (clean["status"], clean["retry_count"], clean["last_error"], clean["dependencies_met"]) == (
        "pending", 0, None, True)
    assert (load["status"], load["last_error"], load["dependencies_met"], load["completed_at"]) == (
        "pending", None, False, None)
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM dead_letter_queue WHERE job_id = $1", ids["clean"]) == 0
    await _run(api, h, ids["clean"])
    await _run(api, h, ids["load"])
    assert (await _workflow(api, h, wf))["status"] == "completed"
    assert len(tap.named("workflow_completed")) == 1
    # nothing to retry now
    err = assert_error(await api.client.post(f"/api/v1/workflows/{wf}/retry", headers=h), 400, "BAD_REQUEST")
    assert err["message"] == "Nothing to retry: only failed workflows can be retried, this one is completed"


async def test_cancel_cascades_and_stays_cancelled(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    created = await _create(api, h, DIAMOND)
    wf, ids = created["workflow_id"], {m["key"]: m["job_id"] for m in created["job_ids"]}
    leased = await claim(api, h, queue="wf")
    assert leased[0]["id"] == ids["extract"]
    resp = await api.client.post(f"/api/v1/workflows/{wf}/cancel", headers=h)
    assert resp.status_code == 200
    out = resp.json()
    assert out["status"] == "cancelled" and RFC3339_Z.match(out["completed_at"])
    statuses = {j["key"]: j["status"] for j in (await _workflow(api, h, wf))["jobs"]}
    assert statuses == {"extract": "processing", "clean": "cancelled", "enrich": "cancelled", "load": "cancelled"}
    assert (await get_job(api, h, ids["clean"]))["last_error"] == "Workflow cancelled"
    # the running job finishes; the workflow stays cancelled
    resp = await ack(api, h, ids["extract"], "complete", worker_id="w1", lease_id=leased[0]["lease_id"])
    assert resp.status_code == 200
    after = await _workflow(api, h, wf)
    assert after["status"] == "cancelled" and after["completed_at"] == out["completed_at"]
    assert after["progress"]["completed"] == 1
    again = await api.client.post(f"/api/v1/workflows/{wf}/cancel", headers=h)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    err = assert_error(await api.client.post(f"/api/v1/workflows/{wf}/retry", headers=h), 400, "BAD_REQUEST")
    assert "this one is cancelled" in err["message"]


async def test_cancel_a_completed_workflow_is_a_conflict(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    created = await _create(api, h, {"name": "one", "jobs": [{"key": "a", "queue_name": "wf", "payload": 1}]})
    await _run(api, h, created["job_ids"][0]["job_id"])
    assert_error(await api.client.post(f"/api/v1/workflows/{created['workflow_id']}/cancel", headers=h),
                 409, "CONFLICT")
    running = await _create(api, h, {"name": "two", "jobs": [{"key": "a", "queue_name": "wf", "payload": 1}]})
    err = assert_error(await api.client.post(f"/api/v1/workflows/{running['workflow_id']}/retry", headers=h),
                       400, "BAD_REQUEST")
    assert err["message"] == "Nothing to retry: only failed workflows can be retried, this one is pending"


async def test_node_sdk_workflow_job_routes(api: Api, tenant: dict[str, Any]) -> None:
    """What `@spooled/sdk` calls (CONTRACT §19 row 16): `GET /workflows/{id}/jobs`,
    `/jobs/{job_id}`, `/jobs/status` (npm package not installable here: wire-level)."""
    h = tenant["headers"]
    created = await _create(api, h, DIAMOND)
    wf, ids = created["workflow_id"], {m["key"]: m["job_id"] for m in created["job_ids"]}
    await _run(api, h, ids["extract"])
    jobs = (await api.client.get(f"/api/v1/workflows/{wf}/jobs", headers=h)).json()
    assert [(j["key"], j["status"]) for j in jobs] == [
        ("extract", "completed"), ("clean", "pending"), ("enrich", "pending"), ("load", "pending")]
    one = (await api.client.get(f"/api/v1/workflows/{wf}/jobs/{ids['enrich']}", headers=h)).json()
    assert (one["id"], one["key"], one["queue"], one["depends_on"]) == (ids["enrich"], "enrich", "wf", [ids["extract"]])
    statuses = (await api.client.get(f"/api/v1/workflows/{wf}/jobs/status", headers=h)).json()
    assert statuses[0] == {"job_id": ids["extract"], "key": "extract", "status": "completed", "progress": 100.0}
    assert [s["status"] for s in statuses[1:]] == ["pending"] * 3
    other = await _create(api, h, {"name": "x", "jobs": [{"key": "a", "queue_name": "wf", "payload": 1}]})
    assert_error(await api.client.get(f"/api/v1/workflows/{other['workflow_id']}/jobs/{ids['enrich']}", headers=h),
                 404, "NOT_FOUND")
    for path in ("", "/jobs", "/jobs/status", f"/jobs/{ids['enrich']}"):
        assert_error(await api.client.get(f"/api/v1/workflows/00000000-0000-4000-8000-000000000000{path}",
                                          headers=h), 404, "NOT_FOUND")
    # another organization sees nothing of it
    stranger = await api.create_org()
    sh = api.as_key(stranger["api_key"]["key"])
    await set_plan(api, stranger["organization"]["id"], "enterprise")
    for path in ("", "/jobs", "/jobs/status"):
        assert_error(await api.client.get(f"/api/v1/workflows/{wf}{path}", headers=sh), 404, "NOT_FOUND")
    assert_error(await api.client.post(f"/api/v1/workflows/{wf}/cancel", headers=sh), 404, "NOT_FOUND")
    assert (await api.client.get("/api/v1/workflows", headers=sh)).json() == []


async def test_bad_graphs_are_refused_by_name_and_write_nothing(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]

    def job(key: str, *deps: str, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"key": key, "queue_name": "wf", "payload": {}, **extra}
        if deps:
            out["depends_on"] = list(deps)
        return out

    cases: list[tuple[list[dict[str, Any]], int, str, str]] = [
        ([job("a", "c"), job("b", "a"), job("c", "b")], 400, "BAD_REQUEST",
         "Workflow has a dependency cycle: a -> c -> b -> a"),
        ([job("a"), job("b", "b")], 400, "BAD_REQUEST", "A job cannot depend on itself: 'b'"),
        ([job("a"), job("a"), job("b"), job("b")], 400, "BAD_REQUEST", "Duplicate job keys in workflow: 'a', 'b'"),
        ([job("a", "ghost", "phantom")], 400, "BAD_REQUEST", "Unknown dependency keys: 'ghost', 'phantom'"),
        ([job("bad key!")], 400, "VALIDATION_ERROR", ""),
        ([job("a", "k" * 101)], 400, "VALIDATION_ERROR", ""),
        ([job("a", "")], 400, "VALIDATION_ERROR", ""),
        ([job("a", queue_name="-bad")], 400, "VALIDATION_ERROR", ""),
        ([job("a", priority=101)], 400, "VALIDATION_ERROR", ""),
        ([job("a", dependency_mode="most")], 400, "VALIDATION_ERROR", ""),
        ([job("a", max_retries="3")], 422, "VALIDATION_ERROR", ""),
        ([{"key": "a", "queue_name": "wf"}], 422, "VALIDATION_ERROR", ""),
        ([], 400, "VALIDATION_ERROR", ""),
        ([job(f"k{i}") for i in range(MAX_WORKFLOW_JOBS + 1)], 400, "VALIDATION_ERROR", ""),
    ]
    before = await table_fingerprint(api.state.pool)
    for jobs, status, code, message in cases:
        body = await api.client.post("/api/v1/workflows", json={"name": "bad", "jobs": jobs}, headers=h)
        err = assert_error(body, status, code)
        if message:
            assert err["message"] == message
    for body in ({"name": "", "jobs": [job("a")]}, {"name": "semi;colon", "jobs": [job("a")]},
                 {"name": "x" * 256, "jobs": [job("a")]}, {"name": "ok", "description": "d" * 1001, "jobs": [job("a")]}):
        assert_error(await api.client.post("/api/v1/workflows", json=body, headers=h), 400, "VALIDATION_ERROR")
    assert_error(await api.client.post("/api/v1/workflows", json={"name": "ok", "jobs": [job("a")],
                                                                  "metadata": {"x": "y" * 70000}}, headers=h),
                 400, "BAD_REQUEST")
    huge = b'{"name": "big", "jobs": [{"key": "a", "queue_name": "wf", "payload": "' + b"x" * (5 * 1024 * 1024) + b'"}]}'
    assert_error(await api.client.post("/api/v1/workflows", content=huge,
                                       headers={**h, "content-type": "application/json"}), 413, "PAYLOAD_TOO_LARGE")
    assert_error(await api.client.post("/api/v1/workflows", content=b"", headers={**h, "content-type": "application/json"}),
                 400, "INVALID_JSON")
    assert await table_fingerprint(api.state.pool) == before
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM workflows") == 0


async def test_thousand_node_graph_and_cascade(api: Api, tenant: dict[str, Any]) -> None:
    """1,000 jobs: 10 roots, then a 990-long chain hanging off the first root. Failing that root
    cancels the whole chain in its own transaction; the workflow fails once the rest ends."""
    h = tenant["headers"]
    jobs: list[dict[str, Any]] = [{"key": f"root{i}", "queue_name": "big", "payload": {"i": i}, "max_retries": 0}
                                  for i in range(10)]
    prev = "root0"
    for i in range(990):
        jobs.append({"key": f"n{i}", "queue_name": "big", "payload": {"i": i}, "depends_on": [prev]})
        prev = f"n{i}"
    created = await _create(api, h, {"name": "big graph", "jobs": jobs})
    ids = {m["key"]: m["job_id"] for m in created["job_ids"]}
    assert len(ids) == 1000
    detail = await _workflow(api, h, created["workflow_id"])
    assert detail["progress"]["total"] == 1000 and len(detail["dependencies"]) == 990
    leased = {j["id"]: j for j in await claim(api, h, queue="big", limit=100)}
    assert set(leased) == {ids[f"root{i}"] for i in range(10)}
    resp = await ack(api, h, ids["root0"], "fail", worker_id="w1", lease_id=leased[ids["root0"]]["lease_id"])
    assert resp.status_code == 200
    last = await get_job(api, h, ids["n989"])
    assert last["status"] == "cancelled" and last["last_error"].startswith(f"Cancelled: parent job {ids['n988']}")
    for i in range(1, 10):
        await ack(api, h, ids[f"root{i}"], "complete", worker_id="w1", lease_id=leased[ids[f"root{i}"]]["lease_id"])
    final = await _workflow(api, h, created["workflow_id"])
    assert final["status"] == "failed"
    assert final["progress"] == {"total": 1000, "completed": 9, "failed": 991, "pending": 0, "processing": 0}


async def test_plan_quota_and_scope(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await set_plan(api, tenant["org_id"], "free")
    body = {"name": "x", "jobs": [{"key": "a", "queue_name": "wf", "payload": 1}]}
    err = assert_error(await api.client.post("/api/v1/workflows", json=body, headers=h), 403, "FEATURE_DISABLED")
    assert err["feature"] == "workflows"
    await set_plan(api, tenant["org_id"], "starter")
    for _ in range(5):
        await _create(api, h, body)
    err = assert_error(await api.client.post("/api/v1/workflows", json=body, headers=h), 429, "QUOTA_EXCEEDED")
    assert (err["resource"], err["limit"]) == ("workflows", 5)
    await set_plan(api, tenant["org_id"], "enterprise")
    sk = await scoped_key(api, tenant["org_id"], ["wf"])
    assert_error(await api.client.post("/api/v1/workflows", json={"name": "y", "jobs": [
        {"key": "a", "queue_name": "wf", "payload": 1}, {"key": "b", "queue_name": "secret", "payload": 1}]},
        headers=sk), 403, "ACCESS_DENIED")
    mixed = await _create(api, h, {"name": "mixed", "jobs": [
        {"key": "a", "queue_name": "wf", "payload": 1}, {"key": "b", "queue_name": "secret", "payload": 1}]})
    visible = {w["id"] for w in (await api.client.get("/api/v1/workflows?limit=100", headers=sk)).json()}
    assert mixed["workflow_id"] not in visible and len(visible) == 5
    assert_error(await api.client.get(f"/api/v1/workflows/{mixed['workflow_id']}", headers=sk), 404, "NOT_FOUND")
    page = (await api.client.get("/api/v1/workflows?limit=2&offset=1&status=bogus", headers=h)).json()
    assert len(page) == 2


async def test_node_sdk_body_less_posts_and_dependency_aliases(api: Api, tenant: dict[str, Any]) -> None:
    """The Node SDK sends `Content-Type: application/json` on body-less POSTs (CONTRACT §1) and
    `depends_on_job_ids`/`dependency_type` to add dependencies (§19 row 17)."""
    h = {**tenant["headers"], "content-type": "application/json", "accept": "application/json"}
    created = await _create(api, h, DIAMOND)
    wf, ids = created["workflow_id"], {m["key"]: m["job_id"] for m in created["job_ids"]}
    outside = (await api.client.post("/api/v1/jobs", json={"queue_name": "other", "payload": {}}, headers=h)).json()
    resp = await api.client.post(f"/api/v1/jobs/{ids['load']}/dependencies",
                                 json={"depends_on_job_ids": [outside["id"]], "dependency_type": "all"}, headers=h)
    assert resp.status_code == 200 and resp.json()["dependencies_added"] == 1
    got = (await api.client.get(f"/api/v1/jobs/{ids['load']}/dependencies", headers=h)).json()
    assert {d["job_id"] for d in got["dependencies"]} == {ids["clean"], ids["enrich"], outside["id"]}
    downstream = (await api.client.post("/api/v1/jobs", json={"queue_name": "other", "payload": {}},
                                        headers=h)).json()["id"]
    await api.client.post(f"/api/v1/jobs/{downstream}/dependencies", json={"depends_on_job_ids": [ids["load"]]},
                          headers=h)
    resp = await api.client.post(f"/api/v1/workflows/{wf}/cancel", content=b"", headers=h)
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    resp = await api.client.post(f"/api/v1/workflows/{wf}/retry", content=b"{}", headers=h)
    assert_error(resp, 400, "BAD_REQUEST")
    # a job outside the workflow waiting for one of its jobs is cancelled with it; a job the
    # workflow waited for is untouched
    after = await get_job(api, h, downstream)
    assert (after["status"], after["last_error"]) == (
        "cancelled", f"Cancelled: parent job {ids['load']} ended cancelled, so this job can no longer run")
    assert (await get_job(api, h, outside["id"]))["status"] == "pending"


async def test_cancel_racing_a_completing_job_neither_deadlocks_nor_revives(
    api: Api, tenant: dict[str, Any]
) -> None:
    """Workflow cancel and the root's complete in concurrent transactions, both orders: no
    deadlock, the workflow ends cancelled and every waiting job cancelled."""
    import asyncio

    from spooled_backend.core.context import AuthContext
    from spooled_backend.core.events import NoEvents
    from spooled_backend.jobs import service as jobs_service
    from spooled_backend.workflows import service as wf_service

    h = tenant["headers"]
    auth = AuthContext(organization_id=tenant["org_id"], api_key_id="k", plan_tier="enterprise")
    for round_no in range(12):
        body = {"name": f"race {round_no}", "jobs": [{"key": "root", "queue_name": "race", "payload": {}}] + [
            {"key": f"kid{i}", "queue_name": "race", "payload": {}, "depends_on": ["root"]} for i in range(4)]}
        created = await _create(api, h, body)
        wf = created["workflow_id"]
        lease = (await claim(api, h, queue="race"))[0]

        async def complete(delay: float, lease: dict[str, Any] = lease) -> None:
            async with api.state.pool.acquire() as c, c.transaction():
                await jobs_service.complete_job(c, auth, lease["id"], "w1", lease["lease_id"], None, NoEvents())
                await asyncio.sleep(delay)

        async def cancel(delay: float, wf: str = wf) -> None:
            async with api.state.pool.acquire() as c, c.transaction():
                await wf_service.cancel_workflow(c, auth, wf, NoEvents())
                await asyncio.sleep(delay)

        slow = 0.02 * (round_no % 3)
        await asyncio.wait_for(asyncio.gather(complete(slow), cancel(0.02 - slow / 2)), timeout=20)
        detail = await _workflow(api, h, wf)
        assert detail["status"] == "cancelled", round_no
        assert {j["key"]: j["status"] for j in detail["jobs"]} == {
            "root": "completed", **{f"kid{i}": "cancelled" for i in range(4)}}, round_no
