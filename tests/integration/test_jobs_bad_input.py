"""Bad input on every job and DLQ endpoint (CONTRACT §1, §3): exact status and code, the error
body shape, never a 5xx, and nothing stored changes."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import assert_error, claim, create_job, table_fingerprint

JSON = "application/json"
MAX_BODY = 5 * 1024 * 1024

# (label, raw JSON fragment injected as an extra field "x", status, code, detail code)
BAD_FRAGMENTS = [
    ("NaN", "NaN", 400, "INVALID_JSON", "invalid_json"),
    ("-Infinity", "-Infinity", 400, "INVALID_JSON", "invalid_json"),
    ("1e400", "1e400", 400, "INVALID_JSON", "invalid_json"),
    ("-1e400", "-1e400", 400, "INVALID_JSON", "invalid_json"),
    ("nested 100k", "[" * 100_000 + "]" * 100_000, 400, "INVALID_JSON", "invalid_json"),
    ("nested 200", "[" * 200 + "]" * 200, 400, "INVALID_JSON", "invalid_json"),
    ("NUL in value", '"a\\u0000b"', 400, "VALIDATION_ERROR", "invalid_string"),
    ("NUL in key", '{"k\\u0000": 1}', 400, "VALIDATION_ERROR", "invalid_string"),
    ("lone surrogate", '"\\ud800"', 400, "VALIDATION_ERROR", "invalid_string"),
    ("lone low surrogate key", '{"\\udc00": 1}', 400, "VALIDATION_ERROR", "invalid_string"),
    ("2**4400 digits", "1" * 4400, 400, "INVALID_JSON", "invalid_json"),
]

# (label, raw body, content type, status, code, detail code)
BAD_BODIES: list[tuple[str, bytes, str, int, str, str | None]] = [
    ("malformed", b'{"queue_name": "q1",', JSON, 400, "INVALID_JSON", "invalid_json"),
    ("trailing garbage", b"{} x", JSON, 400, "INVALID_JSON", "invalid_json"),
    ("empty", b"", JSON, 400, "INVALID_JSON", "empty_body"),
    ("blank", b" \r\n\t", JSON, 400, "INVALID_JSON", "empty_body"),
    ("array", b"[]", JSON, 422, "VALIDATION_ERROR", "invalid_type"),
    ("string", b'"x"', JSON, 422, "VALIDATION_ERROR", "invalid_type"),
    ("number", b"1", JSON, 422, "VALIDATION_ERROR", "invalid_type"),
    ("null", b"null", JSON, 422, "VALIDATION_ERROR", "invalid_type"),
    ("invalid utf-8", b'{"x": "\xff\xfe"}', JSON, 400, "INVALID_JSON", "invalid_json"),
    ("raw surrogate bytes", b'{"x": "\xed\xa0\x80"}', JSON, 400, "INVALID_JSON", "invalid_json"),
]


def _inject(valid: dict[str, Any], fragment: str) -> bytes:
    text = json.dumps(valid)
    if valid:
        return (text[:-1] + ', "x": ' + fragment + "}").encode()
    return ('{"x": ' + fragment + "}").encode()


async def _world(api: Api, tenant: dict[str, Any]) -> dict[str, str]:
    h = tenant["headers"]
    pending = await create_job(api, h, queue_name="other")
    processing = await create_job(api, h)
    lease = (await claim(api, h))[0]["lease_id"]
    return {"pending": pending, "processing": processing, "lease": lease}


def _endpoints(w: dict[str, str]) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(method, path, a valid body, body optional?) for every endpoint that reads a body."""
    ack = {"worker_id": "w1", "lease_id": w["lease"]}
    return [
        ("POST", "/api/v1/jobs", {"queue_name": "q1", "payload": {"a": 1}}, False),
        ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [{"payload": 1}]}, False),
        ("POST", "/api/v1/jobs/claim", {"queue_name": "q9", "worker_id": "w9"}, False),
        ("POST", f"/api/v1/jobs/{w['processing']}/complete", ack, False),
        ("POST", f"/api/v1/jobs/{w['processing']}/fail", {**ack, "error": "e"}, False),
        ("POST", f"/api/v1/jobs/{w['processing']}/heartbeat", {**ack, "lease_duration_secs": 30}, False),
        ("PUT", f"/api/v1/jobs/{w['pending']}/priority", {"priority": 3}, False),
        ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True}, False),
        ("POST", "/api/v1/jobs/dlq/retry", {}, True),
    ]


async def test_every_body_endpoint_rejects_bad_json_and_stores_nothing(
    api: Api, tenant: dict[str, Any]
) -> None:
    w = await _world(api, tenant)
    before = await table_fingerprint(api.state.pool)
    for method, path, valid, optional in _endpoints(w):
        cases = list(BAD_BODIES)
        cases += [(f"fragment {lbl}", _inject(valid, frag), JSON, st, code, dc)
                  for lbl, frag, st, code, dc in BAD_FRAGMENTS]
        cases += [
            ("text/plain", json.dumps(valid).encode(), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", None),
            ("form", json.dumps(valid).encode(), "application/x-www-form-urlencoded", 415,
             "UNSUPPORTED_MEDIA_TYPE", None),
            ("over 5 MiB", _inject(valid, '"' + "a" * MAX_BODY + '"'), JSON, 413, "PAYLOAD_TOO_LARGE", None),
        ]
        for label, raw, ctype, status, code, detail in cases:
            if optional and label in ("empty", "blank"):
                continue
            headers = {**tenant["headers"], "Content-Type": ctype}
            resp = await api.client.request(method, path, content=raw, headers=headers)
            try:
                assert_error(resp, status, code, detail)
            except AssertionError as exc:
                raise AssertionError(f"{method} {path} [{label}]: {exc}") from None
    assert await table_fingerprint(api.state.pool) == before


async def test_optional_body_accepts_empty(api: Api, tenant: dict[str, Any]) -> None:
    for raw in (b"", b"  ", b"{}"):
        resp = await api.client.post(
            "/api/v1/jobs/dlq/retry", content=raw, headers={**tenant["headers"], "Content-Type": JSON}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"retried_count": 0, "retried_jobs": [], "job_ids": [], "skipped_jobs": []}


async def test_bodyless_endpoints_ignore_any_body(api: Api, tenant: dict[str, Any]) -> None:
    """CONTRACT §1: handlers that take no body must ignore it (JSON content type, junk body)."""
    h = {**tenant["headers"], "Content-Type": JSON}
    job = await create_job(api, tenant["headers"])
    resp = await api.client.request("DELETE", f"/api/v1/jobs/{job}", content=b"{nope", headers=h)
    assert resp.status_code == 204 and resp.content == b""
    resp = await api.client.post(f"/api/v1/jobs/{job}/retry", content=b"\x00garbage", headers=h)
    assert_error(resp, 409, "CONFLICT")
    for path in ("/api/v1/jobs", "/api/v1/jobs/stats", f"/api/v1/jobs/{job}",
                 f"/api/v1/jobs/{job}/history", "/api/v1/jobs/dlq"):
        resp = await api.client.request("GET", path, content=b"[[[", headers=h)
        assert resp.status_code == 200, (path, resp.text)


CREATE_CASES: list[tuple[dict[str, Any], int, str, str | None]] = [
    ({"queue_name": None}, 422, "VALIDATION_ERROR", "missing_field"),
    ({"payload": None}, 422, "VALIDATION_ERROR", "missing_field"),
    ({"queue_name": 5}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"queue_name": ["q"]}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"queue_name": ""}, 400, "VALIDATION_ERROR", None),
    ({"queue_name": ".hidden"}, 400, "VALIDATION_ERROR", None),
    ({"queue_name": "-dash"}, 400, "VALIDATION_ERROR", None),
    ({"queue_name": "a b"}, 400, "VALIDATION_ERROR", None),
    ({"queue_name": "a/b"}, 400, "VALIDATION_ERROR", None),
    ({"queue_name": "x" * 101}, 400, "VALIDATION_ERROR", None),
    ({"priority": "5"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"priority": 5.5}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"priority": True}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"priority": 101}, 400, "VALIDATION_ERROR", None),
    ({"priority": -101}, 400, "VALIDATION_ERROR", None),
    ({"priority": 2**70}, 400, "VALIDATION_ERROR", None),
    ({"priority": -(2**70)}, 400, "VALIDATION_ERROR", None),
    ({"max_retries": -1}, 400, "VALIDATION_ERROR", None),
    ({"max_retries": 101}, 400, "VALIDATION_ERROR", None),
    ({"max_retries": "3"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"timeout_seconds": 0}, 400, "VALIDATION_ERROR", None),
    ({"timeout_seconds": 86401}, 400, "VALIDATION_ERROR", None),
    ({"timeout_seconds": 2**64}, 400, "VALIDATION_ERROR", None),
    ({"scheduled_at": "2030-01-01T00:00:00"}, 400, "VALIDATION_ERROR", None),
    ({"scheduled_at": "2030-01-01 00:00:00"}, 400, "VALIDATION_ERROR", None),
    ({"scheduled_at": "tomorrow"}, 400, "VALIDATION_ERROR", None),
    ({"scheduled_at": "0001-01-01T00:00:00+14:00"}, 400, "VALIDATION_ERROR", None),
    ({"scheduled_at": "9999-12-31T23:59:59-14:00"}, 400, "VALIDATION_ERROR", None),
    ({"scheduled_at": [2030]}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"expires_at": "2030-01-01T00:00:00.5"}, 400, "VALIDATION_ERROR", None),
    ({"idempotency_key": ""}, 400, "VALIDATION_ERROR", None),
    ({"idempotency_key": "k" * 256}, 400, "VALIDATION_ERROR", None),
    ({"idempotency_key": 5}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"tags": "urgent"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"tags": 5}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"tags": {"k": "v" * 70_000}}, 400, "BAD_REQUEST", None),
    ({"parent_job_id": "no-such-job"}, 400, "BAD_REQUEST", None),
    ({"parent_job_id": 5}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"completion_webhook": "http://example.com/hook"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "not a url"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://127.0.0.1/hook"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://localhost:8443/hook"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://169.254.169.254/latest/meta-data"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://metadata.google.internal/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://10.1.2.3/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://192.168.0.1/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://[::1]/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://[::ffff:127.0.0.1]/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://0.0.0.0/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": "https://2130706433/x"}, 400, "VALIDATION_ERROR", None),
    ({"completion_webhook": 5}, 422, "VALIDATION_ERROR", "invalid_type"),
    ({"completion_webhook_secret": "s" * 256}, 400, "VALIDATION_ERROR", None),
    ({"payload": {"k": "a\u0000b"}}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"payload": {"a\u0000": 1}}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"payload": ["\ud800"]}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"payload": {"\udfff": 1}}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"idempotency_key": "k\u0000"}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"queue_name": "q\u0000"}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"tags": ["a\u0000"]}, 400, "VALIDATION_ERROR", "invalid_string"),
    ({"completion_webhook_secret": "\ud800"}, 400, "VALIDATION_ERROR", "invalid_string"),
]


def _raw(body: dict[str, Any]) -> bytes:
    # json.dumps escapes NUL and lone surrogates as \u0000 / \ud800: raw JSON text, as a client sends
    return json.dumps(body).encode()


async def test_create_field_rules(api: Api, tenant: dict[str, Any]) -> None:
    before = await table_fingerprint(api.state.pool)
    for change, status, code, detail in CREATE_CASES:
        body: dict[str, Any] = {"queue_name": "q1", "payload": {"a": 1}}
        for key, value in change.items():
            if value is None and key in ("queue_name", "payload"):
                body.pop(key)
            else:
                body[key] = value
        resp = await api.client.post(
            "/api/v1/jobs", content=_raw(body), headers={**tenant["headers"], "Content-Type": JSON}
        )
        try:
            err = assert_error(resp, status, code, detail)
        except AssertionError as exc:
            raise AssertionError(f"{change!r}: {exc}") from None
        if code == "VALIDATION_ERROR":
            assert err["error"] == "Validation failed"
            assert err["details"][0]["field"].split(".")[0] in change, (change, err)
    assert await table_fingerprint(api.state.pool) == before


async def test_payload_over_plan_cap_is_413_with_quota_fields(api: Api, tenant: dict[str, Any]) -> None:
    before = await table_fingerprint(api.state.pool)
    big = {"queue_name": "q1", "payload": {"blob": "x" * 1_048_600}}
    resp = await api.client.post("/api/v1/jobs", json=big, headers=tenant["headers"])
    err = assert_error(resp, 413, "PAYLOAD_TOO_LARGE")
    assert err["limit"] == 1_048_576 and err["plan"] == "enterprise"
    assert err["current"] == len(json.dumps(big["payload"], separators=(",", ":")))
    assert "upgrade_to" not in err

    free = await api.create_org()
    fh = api.as_key(free["api_key"]["key"])
    resp = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q1", "payload": "y" * 70_000}, headers=fh
    )
    err = assert_error(resp, 413, "PAYLOAD_TOO_LARGE")
    assert (err["current"], err["limit"], err["plan"], err["upgrade_to"]) == (70_002, 65_536, "free", "starter")
    # exactly at the cap is fine
    resp = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q1", "payload": "y" * 65_534}, headers=fh
    )
    assert resp.status_code == 201, resp.text
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs WHERE organization_id = $1",
                                free["organization"]["id"]) == 1
    assert (await table_fingerprint(api.state.pool))[1:] != before[1:]  # only the one good insert


async def test_json_depth_limit_boundary(api: Api, tenant: dict[str, Any]) -> None:
    """Nesting deeper than 128 levels (the body object counts as one) → 400 INVALID_JSON."""
    h = {**tenant["headers"], "Content-Type": JSON}
    ok = '{"queue_name": "q1", "payload": ' + "[" * 127 + "]" * 127 + "}"
    resp = await api.client.post("/api/v1/jobs", content=ok.encode(), headers=h)
    assert resp.status_code == 201, resp.text
    job = (await api.client.get(f"/api/v1/jobs/{resp.json()['id']}", headers=h)).json()
    depth, node = 0, job["payload"]
    while isinstance(node, list):
        depth, node = depth + 1, (node[0] if node else None)
    assert depth == 127
    bad = '{"queue_name": "q1", "payload": ' + "[" * 128 + "]" * 128 + "}"
    assert_error(await api.client.post("/api/v1/jobs", content=bad.encode(), headers=h),
                 400, "INVALID_JSON", "invalid_json")


async def test_null_payload_is_stored_as_json_null(api: Api, tenant: dict[str, Any]) -> None:
    """`payload` is required but any JSON value, null included (Job.payload: key present, may be null)."""
    resp = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q1", "payload": None}, headers=tenant["headers"]
    )
    assert resp.status_code == 201, resp.text
    job = (await api.client.get(f"/api/v1/jobs/{resp.json()['id']}", headers=tenant["headers"])).json()
    assert "payload" in job and job["payload"] is None
    jobs = await claim(api, tenant["headers"])
    assert jobs[0]["payload"] is None and "payload" in jobs[0]
    resp = await api.client.post(
        "/api/v1/jobs/bulk", json={"queue_name": "q1", "jobs": [{"payload": None}]},
        headers=tenant["headers"],
    )
    assert resp.status_code == 200 and resp.json()["success_count"] == 1, resp.text


def _ack_cases() -> list[tuple[str, dict[str, Any], int, str, str | None]]:
    return [
        ("complete", {"worker_id": None}, 422, "VALIDATION_ERROR", "missing_field"),
        ("complete", {"lease_id": ""}, 400, "VALIDATION_ERROR", None),
        ("complete", {"lease_id": 5}, 422, "VALIDATION_ERROR", "invalid_type"),
        ("complete", {"worker_id": ""}, 400, "VALIDATION_ERROR", None),
        ("complete", {"worker_id": ["w1"]}, 422, "VALIDATION_ERROR", "invalid_type"),
        ("complete", {"result": "r" * 1_048_600}, 413, "PAYLOAD_TOO_LARGE", None),
        ("complete", {"result": {"k": "\u0000"}}, 400, "VALIDATION_ERROR", "invalid_string"),
        ("complete", {"worker_id": "w\u0000"}, 400, "VALIDATION_ERROR", "invalid_string"),
        ("complete", {"lease_id": "\ud800"}, 400, "VALIDATION_ERROR", "invalid_string"),
        ("fail", {"error": None}, 422, "VALIDATION_ERROR", "missing_field"),
        ("fail", {"error": ""}, 400, "VALIDATION_ERROR", None),
        ("fail", {"error": "e" * 2049}, 400, "VALIDATION_ERROR", None),
        ("fail", {"error": 500}, 422, "VALIDATION_ERROR", "invalid_type"),
        # a NUL in `error` is cleaned, not refused (R15): test_compat_input.py
        ("heartbeat", {"lease_duration_secs": 4}, 400, "VALIDATION_ERROR", None),
        ("heartbeat", {"lease_duration_secs": 3601}, 400, "VALIDATION_ERROR", None),
        ("heartbeat", {"lease_duration_secs": 2**70}, 400, "VALIDATION_ERROR", None),
        ("heartbeat", {"lease_duration_secs": "30"}, 422, "VALIDATION_ERROR", "invalid_type"),
        ("heartbeat", {"lease_duration_secs": 30.0}, 422, "VALIDATION_ERROR", "invalid_type"),
    ]


async def test_ack_field_rules(api: Api, tenant: dict[str, Any]) -> None:
    w = await _world(api, tenant)
    before = await table_fingerprint(api.state.pool)
    for action, change, status, code, detail in _ack_cases():
        body: dict[str, Any] = {"worker_id": "w1", "lease_id": w["lease"]}
        if action == "fail":
            body["error"] = "boom"
        for key, value in change.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
        resp = await api.client.post(
            f"/api/v1/jobs/{w['processing']}/{action}", content=_raw(body),
            headers={**tenant["headers"], "Content-Type": JSON},
        )
        try:
            assert_error(resp, status, code, detail)
        except AssertionError as exc:
            raise AssertionError(f"{action} {change!r}: {exc}") from None
    assert await table_fingerprint(api.state.pool) == before


OTHER_CASES: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
    ("POST", "/api/v1/jobs/claim", {"worker_id": "w"}, 422, "VALIDATION_ERROR", "missing_field"),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1"}, 422, "VALIDATION_ERROR", "missing_field"),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": ""}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w" * 256}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w", "limit": 0}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w", "limit": 101}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w", "limit": "1"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w", "lease_duration_secs": 4}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w", "lease_duration_secs": 3601}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "q1", "worker_id": "w\u0000"}, 400, "VALIDATION_ERROR", "invalid_string"),
    ("POST", "/api/v1/jobs/claim", {"queue_name": "bad queue", "worker_id": "w"}, 400, "VALIDATION_ERROR", None),
    ("PUT", "{pending}/priority", {}, 422, "VALIDATION_ERROR", "missing_field"),
    ("PUT", "{pending}/priority", {"priority": None}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("PUT", "{pending}/priority", {"priority": "1"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("PUT", "{pending}/priority", {"priority": 101}, 400, "VALIDATION_ERROR", None),
    ("PUT", "{pending}/priority", {"priority": 2**70}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/purge", {}, 422, "VALIDATION_ERROR", "missing_field"),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": False}, 400, "BAD_REQUEST", None),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": "true"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": 1}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True, "older_than": "2030-01-01T00:00:00"}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True, "older_than": "yesterday"}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True, "limit": 0}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True, "limit": 10001}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True, "queue_name": ".x"}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/retry", {"job_ids": "x"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/dlq/retry", {"job_ids": [1]}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/dlq/retry", {"job_ids": ["a"] * 101}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/retry", {"job_ids": ["a"] * 6, "limit": 5}, 400, "BAD_REQUEST", None),
    ("POST", "/api/v1/jobs/dlq/retry", {"limit": 0}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/retry", {"limit": 101}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/dlq/retry", {"queue_name": 7}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1"}, 422, "VALIDATION_ERROR", "missing_field"),
    ("POST", "/api/v1/jobs/bulk", {"jobs": [{"payload": 1}]}, 422, "VALIDATION_ERROR", "missing_field"),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": []}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [{"payload": 1}] * 101}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": "x"}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [1]}, 422, "VALIDATION_ERROR", "invalid_type"),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [{"payload": 1}], "default_priority": 101}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [{"payload": 1}], "default_max_retries": -1}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [{"payload": 1}], "default_timeout_seconds": 0}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "-q", "jobs": [{"payload": 1}]}, 400, "VALIDATION_ERROR", None),
    ("POST", "/api/v1/jobs/bulk", {"queue_name": "q1", "jobs": [{"payload": "\u0000"}]}, 400, "VALIDATION_ERROR", "invalid_string"),
]


async def test_other_body_field_rules(api: Api, tenant: dict[str, Any]) -> None:
    w = await _world(api, tenant)
    before = await table_fingerprint(api.state.pool)
    for method, path, body, status, code, detail in OTHER_CASES:
        path = path.replace("{pending}", f"/api/v1/jobs/{w['pending']}")
        resp = await api.client.request(
            method, path, content=_raw(body), headers={**tenant["headers"], "Content-Type": JSON}
        )
        try:
            assert_error(resp, status, code, detail)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {str(body)[:80]}: {exc}") from None
    assert await table_fingerprint(api.state.pool) == before


async def test_bulk_item_errors_are_reported_per_item(api: Api, tenant: dict[str, Any]) -> None:
    items = [
        {"payload": {"ok": 1}},
        {"priority": 1},
        {"payload": 2, "priority": 101},
        {"payload": 3, "scheduled_at": "2030-01-01T00:00:00"},
        {"payload": 4, "idempotency_key": ""},
        {"payload": 5, "priority": "high"},
        {"payload": "z" * 1_048_600},
        {"payload": 6},
    ]
    resp = await api.client.post(
        "/api/v1/jobs/bulk", json={"queue_name": "q1", "jobs": items}, headers=tenant["headers"]
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert [s["index"] for s in data["succeeded"]] == [0, 7]
    assert [f["index"] for f in data["failed"]] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(f["error"], str) and f["error"] for f in data["failed"])
    assert (data["total"], data["success_count"], data["failure_count"]) == (8, 2, 6)
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs") == 2


QUERY_CASES: list[tuple[str, int, str]] = [
    ("/api/v1/jobs?status=bogus", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?status=pending,bogus", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?order_by=password", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?order_by=created_at%3BDROP%20TABLE%20jobs", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?order_dir=sideways", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?limit=abc", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?limit=1.5", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?limit=1e400", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?offset=-1", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?offset=abc", 400, "VALIDATION_ERROR"),
    (f"/api/v1/jobs?offset={10**30}", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?created_after=2026-01-01T00:00:00", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?created_before=garbage", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?created_after=0001-01-01T00:00:00%2B14:00", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?tag=" + "t" * 1025, 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?tag=a%00", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?queue_name=.x", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?queue=a%20b", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?q=%00", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs?job_type=a%00b", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/dlq?offset=-5", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/dlq?order_by=payload", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/dlq?created_after=2026-01-01", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/dlq?q=%00", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/stats?queue_name=.x", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/stats?queue=x%00", 400, "VALIDATION_ERROR"),
    ("/api/v1/jobs/status?ids=" + ",".join(["a"] * 101), 400, "BAD_REQUEST"),
    ("{job}/history?limit=abc", 400, "VALIDATION_ERROR"),
    ("{job}/history?offset=-1", 400, "VALIDATION_ERROR"),
    (f"{{job}}/history?offset={2**64}", 400, "VALIDATION_ERROR"),
    ("{job}/history?order_dir=random", 400, "VALIDATION_ERROR"),
]


async def test_query_parameter_rules(api: Api, tenant: dict[str, Any]) -> None:
    job = await create_job(api, tenant["headers"])
    for path, status, code in QUERY_CASES:
        path = path.replace("{job}", f"/api/v1/jobs/{job}")
        resp = await api.client.get(path, headers=tenant["headers"])
        try:
            body = assert_error(resp, status, code)
        except AssertionError as exc:
            raise AssertionError(f"GET {path[:90]}: {exc}") from None
        if code == "VALIDATION_ERROR":
            assert isinstance(body["details"], list) and body["details"], body


async def test_limit_is_clamped_not_rejected(api: Api, tenant: dict[str, Any]) -> None:
    for _ in range(2):
        await create_job(api, tenant["headers"])
    for limit in ("0", "-3", "1000", str(10**30)):
        for path in ("/api/v1/jobs", "/api/v1/jobs/dlq"):
            resp = await api.client.get(f"{path}?limit={limit}", headers=tenant["headers"])
            assert resp.status_code == 200, resp.text
            expected = 0 if path.endswith("dlq") else 1 if int(limit) < 1 else 2
            assert len(resp.json()) == expected, (path, limit)
            assert resp.headers["x-has-more"] == ("true" if expected == 1 else "false")


async def test_ids_that_are_not_uuids_are_404(api: Api, tenant: dict[str, Any]) -> None:
    h = {**tenant["headers"], "Content-Type": JSON}
    ack = {"worker_id": "w", "lease_id": "l", "error": "e", "lease_duration_secs": 30}
    for bad in ("not-a-uuid", "1", "%00", "'%20OR%201=1--", "00000000-0000-0000-0000-00000000000g",
                "x" * 300):
        for method, suffix, body in [
            ("GET", "", None), ("DELETE", "", None), ("POST", "/retry", None),
            ("PUT", "/priority", {"priority": 1}), ("POST", "/complete", ack),
            ("POST", "/fail", ack), ("POST", "/heartbeat", ack), ("GET", "/history", None),
        ]:
            resp = await api.client.request(
                method, f"/api/v1/jobs/{bad}{suffix}", headers=h,
                content=json.dumps(body).encode() if body is not None else None,
            )
            try:
                assert_error(resp, 404, "NOT_FOUND")
            except AssertionError as exc:
                raise AssertionError(f"{method} {bad}{suffix}: {exc}") from None
    # a well-formed but unknown id is 404 as well
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(await api.client.get(f"/api/v1/jobs/{missing}", headers=h), 404, "NOT_FOUND")
    status = await api.client.get(f"/api/v1/jobs/status?ids=nope,{missing}", headers=h)
    assert status.status_code == 200 and status.json() == []
