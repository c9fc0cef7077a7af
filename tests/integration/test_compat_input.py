"""Bad input fixed by kind (issue 7): timestamps (R14), worker failure text (R15), the purge
confirmation message (R10). Each case is the failing input with the right answer asserted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from spooled.errors import ValidationError

from tests.conftest import Api
from tests.integration.jobs_support import ack, assert_error, claim, create_job, get_job
from tests.integration.test_workers_sdk import sdk_client

HINT = "RFC 3339"
EPOCHS: list[Any] = [1767225600, 1767225600.5, "1767225600", "20260101", "2026-01-01T00:00:00",
                     "2026-01-01", "tomorrow", "2026-01-01T00:00Z"]


async def test_job_timestamps_are_rfc3339_with_offset_only(api: Api, tenant: dict[str, Any]) -> None:
    """R14: a JSON number or digits-only string is not a Unix epoch; naive is not UTC."""
    h = tenant["headers"]
    for field in ("scheduled_at", "expires_at"):
        for value in EPOCHS:
            resp = await api.client.post(
                "/api/v1/jobs", json={"queue_name": "ts", "payload": {}, field: value}, headers=h
            )
            err = assert_error(resp, 400, "VALIDATION_ERROR")
            assert err["details"][0]["field"] == field and HINT in err["message"], (field, value)
    for good in ("2099-01-01T00:00:00Z", "2099-01-01T02:00:00+02:00", "2099-01-01 00:00:00.5z"):
        resp = await api.client.post(
            "/api/v1/jobs", json={"queue_name": "ts", "payload": {}, "scheduled_at": good},
            headers=h,
        )
        assert resp.status_code == 201, (good, resp.text)
    job = await get_job(api, h, resp.json()["id"])
    assert job["status"] == "scheduled" and job["scheduled_at"] == "2099-01-01T00:00:00.500000Z"
    # bulk items: the bad item fails with the same message, the good one is created
    bulk = await api.client.post(
        "/api/v1/jobs/bulk",
        json={"queue_name": "ts", "jobs": [{"payload": 1, "scheduled_at": 1767225600},
                                           {"payload": 2, "scheduled_at": "2099-01-01T00:00:00Z"}]},
        headers=h,
    )
    assert bulk.status_code == 200, bulk.text
    out = bulk.json()
    assert [f["index"] for f in out["failed"]] == [0] and HINT in out["failed"][0]["error"]
    assert [s["index"] for s in out["succeeded"]] == [1]


async def test_other_timestamp_fields_and_filters(api: Api, tenant: dict[str, Any]) -> None:
    """R14 everywhere a timestamp is accepted: purge `older_than`, list filters, API key expiry
    (tenant and admin routes)."""
    h = tenant["headers"]
    for value in (1767225600, "1767225600", "2026-01-01T00:00:00"):
        purge = await api.client.post(
            "/api/v1/jobs/dlq/purge", json={"confirm": True, "older_than": value}, headers=h
        )
        assert HINT in assert_error(purge, 400, "VALIDATION_ERROR")["message"]
        key = await api.client.post(
            "/api/v1/api-keys", json={"name": "k", "expires_at": value}, headers=h
        )
        assert HINT in assert_error(key, 400, "VALIDATION_ERROR")["message"]
    for path in ("/api/v1/jobs", "/api/v1/jobs/dlq"):
        for param in ("created_after", "created_before"):
            for value in ("1767225600", "2026-01-01T00:00:00"):
                resp = await api.client.get(path, params={param: value}, headers=h)
                err = assert_error(resp, 400, "VALIDATION_ERROR")
                assert err["details"][0]["field"] == param, err
            ok = await api.client.get(path, params={param: "2026-01-01T00:00:00+00:00"}, headers=h)
            assert ok.status_code == 200, ok.text
    future = "2099-01-01T00:00:00Z"
    made = await api.client.post("/api/v1/api-keys", json={"name": "k2", "expires_at": future},
                                 headers=h)
    assert made.status_code == 201 and made.json()["expires_at"] == future


async def test_sdk_timestamps(api: Api, tenant: dict[str, Any]) -> None:
    """Through the SDK: aware datetimes work; a naive one (sent without an offset) is a 400."""
    from datetime import UTC

    async with sdk_client(api, tenant["key"]) as client:
        made = await client.jobs.create(
            {"queue_name": "sdk-ts", "payload": {}, "scheduled_at": datetime(2099, 1, 1, tzinfo=UTC)}
        )
        assert (await client.jobs.get(made.id)).status == "scheduled"
        with pytest.raises(ValidationError) as naive:
            await client.jobs.create(
                {"queue_name": "sdk-ts", "payload": {}, "scheduled_at": datetime(2099, 1, 1)}
            )
        assert naive.value.status_code == 400 and HINT in naive.value.message


async def test_worker_failure_text_is_cleaned_not_refused(api: Api, tenant: dict[str, Any]) -> None:
    """R15: NUL removed, lone surrogates → U+FFFD, then the 1..2048 rule; the job is failed
    (retried) instead of staying processing until its lease expires."""
    h = tenant["headers"]
    job_id = await create_job(api, h, max_retries=1)
    lease = (await claim(api, h))[0]["lease_id"]
    raw = b'{"worker_id": "w1", "lease_id": "%s", "error": "disk\\u0000 full \\ud800 at \\udfff!"}'
    resp = await api.client.post(
        f"/api/v1/jobs/{job_id}/fail", content=raw % lease.encode(),
        headers={**h, "Content-Type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["will_retry"] is True
    job = await get_job(api, h, job_id)
    assert (job["status"], job["last_error"]) == ("pending", "disk full \ufffd at \ufffd!")
    async with api.state.pool.acquire() as c:
        details = await c.fetchval(
            "SELECT details->>'error' FROM job_history WHERE job_id = $1 AND event_type = "
            "'retry_scheduled'", job_id,
        )
    assert details == "disk full \ufffd at \ufffd!"
    # a valid surrogate pair (emoji) is kept as it is
    job2 = await create_job(api, h, max_retries=0)
    lease2 = (await claim(api, h))[0]["lease_id"]
    ok = await ack(api, h, job2, "fail", worker_id="w1", lease_id=lease2, error="boom \U0001f4a5")
    assert ok.status_code == 200
    assert (await get_job(api, h, job2))["last_error"] == "boom \U0001f4a5"
    # the length rule applies after cleaning: only NULs → empty → 400; nothing changes
    job3 = await create_job(api, h)
    lease3 = (await claim(api, h))[0]["lease_id"]
    assert_error(await ack(api, h, job3, "fail", worker_id="w1", lease_id=lease3, error="\u0000"),
                 400, "VALIDATION_ERROR")
    assert (await get_job(api, h, job3))["status"] == "processing"
    # payloads and results keep the strict rule
    err = assert_error(
        await ack(api, h, job3, "complete", worker_id="w1", lease_id=lease3,
                  result={"k": "a\u0000b"}),
        400, "VALIDATION_ERROR", "invalid_string",
    )
    assert err["details"][0]["field"].startswith("result")
    assert_error(
        await api.client.post("/api/v1/jobs", json={"queue_name": "q1", "payload": "\u0000"},
                              headers=h),
        400, "VALIDATION_ERROR", "invalid_string",
    )
    # the worker_id is an identifier, not failure text: still strict
    assert_error(await ack(api, h, job3, "fail", worker_id="w\u0000", lease_id=lease3),
                 400, "VALIDATION_ERROR", "invalid_string")


async def test_sdk_fail_with_dirty_error(api: Api, tenant: dict[str, Any]) -> None:
    async with sdk_client(api, tenant["key"]) as client:
        made = await client.jobs.create({"queue_name": "dirty", "payload": {}, "max_retries": 0})
        [job] = (await client.jobs.claim({"queue_name": "dirty", "worker_id": "w"})).jobs
        out = await client.jobs.fail(
            job.id, {"worker_id": "w", "lease_id": job.lease_id, "error": "bad\x00 text\x00"}
        )
        assert out.success is True
        got = await client.jobs.get(made.id)
        assert (got.status, got.last_error) == ("deadletter", "bad text")


async def test_purge_confirmation_messages(api: Api, tenant: dict[str, Any]) -> None:
    """R10: `confirm: true` stays required; the 422/400 message says how to send it."""
    h = tenant["headers"]
    url = "/api/v1/jobs/dlq/purge"
    missing = assert_error(await api.client.post(url, json={}, headers=h), 422,
                           "VALIDATION_ERROR", "missing_field")
    assert '{"confirm": true}' in missing["message"]
    assert '{"confirm": true}' in missing["details"][0]["message"]
    typed = assert_error(await api.client.post(url, json={"confirm": "yes"}, headers=h), 422,
                         "VALIDATION_ERROR", "invalid_type")
    assert '{"confirm": true}' in typed["message"]
    refused = assert_error(await api.client.post(url, json={"confirm": False}, headers=h), 400,
                           "BAD_REQUEST")
    assert '{"confirm": true}' in refused["message"]
    ok = await api.client.post(url, json={"confirm": True}, headers=h)
    assert ok.status_code == 200 and ok.json() == {"purged_count": 0}
