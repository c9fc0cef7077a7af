"""CONTRACT §21 R1: `lease_id` is optional on complete / fail / heartbeat.

Present: it must match (409 LEASE_EXPIRED otherwise). Absent: the worker id, the processing
status and an unexpired lease fence the call in the same single UPDATE; each such call counts in
`spooled_legacy_ack_total{operation}`. The official SDK omits `lease_id` when it is None.
"""

from __future__ import annotations

from typing import Any

from spooled.errors import ConflictError, NotFoundError, is_lease_expired

from spooled_backend.observability import metrics
from tests.conftest import Api
from tests.integration.jobs_support import ack, assert_error, claim, create_job, get_job
from tests.integration.test_workers_sdk import sdk_client


def _legacy(operation: str) -> float:
    return metrics.LEGACY_ACKS.labels(operation=operation)._value.get()


async def _expire(api: Api, job_id: str) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", job_id
        )


async def test_ack_without_lease_id_uses_worker_fencing(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    counts = {op: _legacy(op) for op in ("complete", "fail", "heartbeat")}
    job_id = await create_job(api, h, max_retries=2)
    await claim(api, h, worker="w1")

    # heartbeat without lease_id: extends the lease of the holder only
    resp = await ack(api, h, job_id, "heartbeat", worker_id="w1", lease_duration_secs=600)
    assert resp.status_code == 200, resp.text
    assert resp.json()["success"] is True
    assert_error(await ack(api, h, job_id, "heartbeat", worker_id="w2"), 404, "NOT_FOUND")

    # fail without lease_id → retry scheduled; the same worker cannot fail it again
    resp = await ack(api, h, job_id, "fail", worker_id="w1", error="first")
    assert resp.status_code == 200 and resp.json()["will_retry"] is True, resp.text
    job = await get_job(api, h, job_id)
    assert (job["status"], job["retry_count"], job["last_error"]) == ("pending", 1, "first")
    assert_error(await ack(api, h, job_id, "fail", worker_id="w1"), 409, "LEASE_EXPIRED")

    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET scheduled_at = now() WHERE id = $1", job_id)
    await claim(api, h, worker="w2")
    # another worker's legacy complete: not its job
    assert_error(await ack(api, h, job_id, "complete", worker_id="w1"), 404, "NOT_FOUND")
    resp = await ack(api, h, job_id, "complete", worker_id="w2", result={"ok": True})
    assert resp.status_code == 200 and resp.json() == {"success": True}
    job = await get_job(api, h, job_id)
    assert (job["status"], job["result"]) == ("completed", {"ok": True})
    # legacy replay by the finisher: already completed; by the earlier worker: lost lease
    err = assert_error(await ack(api, h, job_id, "complete", worker_id="w2"), 409, "CONFLICT")
    assert err["message"] == "Job is already completed"
    assert_error(await ack(api, h, job_id, "complete", worker_id="w1"), 409, "LEASE_EXPIRED")

    assert _legacy("heartbeat") - counts["heartbeat"] == 2
    assert _legacy("fail") - counts["fail"] == 2
    assert _legacy("complete") - counts["complete"] == 4


async def test_ack_without_lease_id_refused_after_expiry(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    await claim(api, h, worker="w1")
    await _expire(api, job_id)
    for action in ("heartbeat", "fail", "complete"):
        err = assert_error(await ack(api, h, job_id, action, worker_id="w1"), 409, "LEASE_EXPIRED")
        assert "expired" in err["message"].lower()
    assert (await get_job(api, h, job_id))["status"] == "processing"


async def test_present_lease_id_still_must_match(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    lease = (await claim(api, h, worker="w1"))[0]["lease_id"]
    wrong = "00000000-0000-4000-8000-000000000000"
    for action in ("heartbeat", "fail", "complete"):
        err = assert_error(
            await ack(api, h, job_id, action, worker_id="w1", lease_id=wrong), 409, "LEASE_EXPIRED"
        )
        assert "does not match" in err["message"]
        # "" and non-strings stay refused (§8.4)
        assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=""), 400,
                     "VALIDATION_ERROR")
        assert_error(await ack(api, h, job_id, action, worker_id="w1", lease_id=7), 422,
                     "VALIDATION_ERROR", "invalid_type")
    assert (await ack(api, h, job_id, "complete", worker_id="w1", lease_id=lease)).status_code == 200


async def test_sdk_acks_without_lease_id(api: Api, tenant: dict[str, Any]) -> None:
    """The official SDK with `lease_id` left out (what its own end-to-end scripts do)."""
    async with sdk_client(api, tenant["key"]) as client:
        created = await client.jobs.create({"queue_name": "legacy-q", "payload": {"n": 1}})
        [job] = (await client.jobs.claim({"queue_name": "legacy-q", "worker_id": "sdk-w"})).jobs
        assert job.id == created.id and job.lease_id
        await client.jobs.heartbeat(job.id, {"worker_id": "sdk-w", "lease_duration_secs": 60})
        done = await client.jobs.complete(job.id, {"worker_id": "sdk-w", "result": {"r": 1}})
        assert done.success is True
        got = await client.jobs.get(job.id)
        assert (got.status, got.result) == ("completed", {"r": 1})
        try:
            await client.jobs.complete(job.id, {"worker_id": "sdk-w"})
        except ConflictError as exc:
            assert not is_lease_expired(exc) and exc.code == "CONFLICT"
        else:
            raise AssertionError("replayed complete must be 409")

        second = await client.jobs.create({"queue_name": "legacy-q", "payload": {"n": 2}})
        await client.jobs.claim({"queue_name": "legacy-q", "worker_id": "sdk-w"})
        failed = await client.jobs.fail(second.id, {"worker_id": "sdk-w", "error": "nope"})
        assert failed.success is True
        got = await client.jobs.get(second.id)
        assert (got.status, got.last_error, got.retry_count) == ("pending", "nope", 1)
        try:
            await client.jobs.fail(second.id, {"worker_id": "other", "error": "x"})
        except (NotFoundError, ConflictError):
            pass
        else:
            raise AssertionError("a worker that holds no lease cannot fail the job")


async def test_legacy_counter_is_exported(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h)
    await claim(api, h, worker="w1")
    assert (await ack(api, h, job_id, "complete", worker_id="w1")).status_code == 200
    text = (await api.client.get("/metrics")).text
    line = next(ln for ln in text.splitlines()
                if ln.startswith('spooled_legacy_ack_total{operation="complete"}'))
    assert float(line.split()[-1]) >= 1.0
