"""Schedules REST (CONTRACT §7.10): shapes, filters, update rules, pause/resume, trigger,
history, scope, quotas, and the exact 4xx of every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api
from tests.integration.jobs_support import RFC3339_Z, UUID_RE, scoped_key

S = "/api/v1/schedules"
SCHEDULE_KEYS = {
    "id", "organization_id", "name", "description", "cron_expression", "timezone", "queue_name",
    "payload_template", "priority", "max_retries", "timeout_seconds", "is_active", "last_run_at",
    "next_run_at", "run_count", "tags", "metadata", "created_at", "updated_at",
}


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "nightly", "cron_expression": "0 3 * * *", "queue_name": "reports",
        "payload_template": {"kind": "report"},
    }
    out.update(fields)
    return {k: v for k, v in out.items() if v is not ...}


async def create(api: Api, h: dict[str, str], **fields: Any) -> dict[str, Any]:
    resp = await api.client.post(S, json=body(**fields), headers=h)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_create_get_list_shapes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    created = await create(
        api, h, timezone="Europe/Berlin", description="d", priority=5, tags={"team": "a"},
        metadata={"owner": "ada"},
    )
    assert set(created) == SCHEDULE_KEYS
    assert UUID_RE.match(created["id"]) and RFC3339_Z.match(created["next_run_at"])
    assert created["organization_id"] == tenant["org_id"]
    assert created["is_active"] is True and created["run_count"] == 0
    assert created["last_run_at"] is None
    # defaults from the server (no queue config): 3 retries, 300 s
    assert (created["max_retries"], created["timeout_seconds"]) == (3, 300)
    # the next 03:00 in Berlin, in UTC
    nxt = ts(created["next_run_at"])
    from zoneinfo import ZoneInfo

    local = nxt.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.second) == (3, 0, 0)
    assert timedelta(0) < nxt - datetime.now(UTC) <= timedelta(days=1)

    got = (await api.client.get(f"{S}/{created['id']}", headers=h)).json()
    assert got == created
    listed = (await api.client.get(S, headers=h)).json()
    assert listed == [created]


async def test_queue_defaults_and_explicit_values(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    resp = await api.client.put(
        "/api/v1/queues/reports/config", json={"max_retries": 7, "default_timeout": 99}, headers=h
    )
    assert resp.status_code == 200, resp.text
    defaulted = await create(api, h)
    assert (defaulted["max_retries"], defaulted["timeout_seconds"]) == (7, 99)
    explicit = await create(api, h, max_retries=0, timeout_seconds=5)
    assert (explicit["max_retries"], explicit["timeout_seconds"]) == (0, 5)


async def test_list_filters_and_paging(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    a = await create(api, h, name="a", queue_name="qa")
    b = await create(api, h, name="b", queue_name="qb")
    c = await create(api, h, name="c", queue_name="qa")
    await api.client.post(f"{S}/{c['id']}/pause", headers=h)

    async def names(**params: Any) -> list[str]:
        resp = await api.client.get(S, params=params, headers=h)
        assert resp.status_code == 200, resp.text
        return [s["name"] for s in resp.json()]

    assert await names() == ["c", "b", "a"]
    assert await names(queue_name="qa") == ["c", "a"]
    assert await names(is_active="true") == ["b", "a"]
    assert await names(is_active="false") == ["c"]
    assert await names(queue_name="qa", is_active="true") == ["a"]
    assert await names(limit=1, offset=1) == ["b"]
    assert await names(limit=0) == ["c"]  # clamped to 1
    assert await names(limit=50, offset=3) == []
    assert a and b
    for params, field in (({"is_active": "maybe"}, "is_active"), ({"offset": -1}, "offset"),
                          ({"limit": "x"}, "limit"), ({"queue_name": ".bad"}, "queue_name")):
        resp = await api.client.get(S, params=params, headers=h)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["code"] == "VALIDATION_ERROR"
        assert resp.json()["details"][0]["field"] == field


async def test_update_rules(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    created = await create(api, h)
    sid = created["id"]
    resp = await api.client.put(
        f"{S}/{sid}", json={"name": "renamed", "priority": -3, "queue_name": "ignored",
                            "payload_template": [1, 2], "tags": ["x"], "description": None},
        headers=h,
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert set(updated) == SCHEDULE_KEYS
    assert (updated["name"], updated["priority"], updated["queue_name"]) == ("renamed", -3, "reports")
    assert updated["payload_template"] == [1, 2] and updated["tags"] == ["x"]
    assert updated["next_run_at"] == created["next_run_at"]  # cron unchanged → kept
    assert ts(updated["updated_at"]) >= ts(created["updated_at"])

    resp = await api.client.put(
        f"{S}/{sid}", json={"cron_expression": "30 12 * * *", "timezone": "+05:30"}, headers=h
    )
    moved = resp.json()
    assert moved["cron_expression"] == "30 12 * * *" and moved["timezone"] == "+05:30"
    nxt = ts(moved["next_run_at"])
    assert (nxt.hour, nxt.minute) == (7, 0)  # 12:30 at +05:30

    resp = await api.client.put(f"{S}/{sid}", json={"is_active": False}, headers=h)
    assert resp.json()["is_active"] is False and resp.json()["next_run_at"] == moved["next_run_at"]


async def test_pause_resume_delete(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    sid = (await create(api, h, cron_expression="* * * * *"))["id"]
    async with api.state.pool.acquire() as c:  # make it overdue, as after a pause
        await c.execute("UPDATE schedules SET next_run_at = now() - interval '1 hour' WHERE id = $1", sid)
    paused = (await api.client.post(f"{S}/{sid}/pause", headers=h)).json()
    assert paused["is_active"] is False and paused["next_run_at"] is not None
    resp = await api.client.post(f"{S}/{sid}/resume", headers=h, content=b"")
    assert resp.status_code == 200, resp.text
    resumed = resp.json()
    assert resumed["is_active"] is True
    # recomputed from now: the next minute boundary
    assert timedelta(0) < ts(resumed["next_run_at"]) - datetime.now(UTC) <= timedelta(seconds=61)
    assert (await api.client.delete(f"{S}/{sid}", headers=h)).status_code == 204
    for method, path in (("GET", f"{S}/{sid}"), ("DELETE", f"{S}/{sid}"),
                         ("POST", f"{S}/{sid}/pause"), ("POST", f"{S}/{sid}/resume"),
                         ("POST", f"{S}/{sid}/trigger"), ("GET", f"{S}/{sid}/history"),
                         ("PUT", f"{S}/{sid}")):
        resp = await api.client.request(method, path, headers=h, json={"name": "x"})
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json() == {"code": "NOT_FOUND", "message": "Schedule not found"}
    assert (await api.client.get(f"{S}/not-a-uuid", headers=h)).status_code == 404


async def test_trigger_and_history(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    created = await create(api, h, priority=9, max_retries=2, timeout_seconds=60, tags={"t": 1})
    sid = created["id"]
    resp = await api.client.post(f"{S}/{sid}/trigger", headers=h)
    assert resp.status_code == 200, resp.text
    trig = resp.json()
    assert set(trig) == {"job_id", "triggered_at"} and RFC3339_Z.match(trig["triggered_at"])
    job = (await api.client.get(f"/api/v1/jobs/{trig['job_id']}", headers=h)).json()
    assert job["payload"] == {"kind": "report"} and job["queue_name"] == "reports"
    assert (job["priority"], job["max_retries"], job["timeout_seconds"], job["tags"]) == (9, 2, 60, {"t": 1})
    after = (await api.client.get(f"{S}/{sid}", headers=h)).json()
    assert after["run_count"] == 1 and after["last_run_at"] == trig["triggered_at"]
    assert after["next_run_at"] == created["next_run_at"]
    await api.client.post(f"{S}/{sid}/trigger", headers=h)
    runs = (await api.client.get(f"{S}/{sid}/history", headers=h)).json()
    assert len(runs) == 2
    assert set(runs[0]) == {"id", "schedule_id", "job_id", "status", "error_message", "started_at",
                            "completed_at", "job_status"}
    assert runs[1]["job_id"] == trig["job_id"] and runs[1]["status"] == "completed"
    assert runs[1]["job_status"] == "pending" and runs[1]["error_message"] is None
    assert ts(runs[0]["started_at"]) >= ts(runs[1]["started_at"])
    one = (await api.client.get(f"{S}/{sid}/history", params={"limit": 1}, headers=h)).json()
    assert [r["id"] for r in one] == [runs[0]["id"]]
    # a paused schedule can still be triggered by hand
    await api.client.post(f"{S}/{sid}/pause", headers=h)
    assert (await api.client.post(f"{S}/{sid}/trigger", headers=h)).status_code == 200


async def test_queue_scope(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    mine = await create(api, h, queue_name="allowed")
    other = await create(api, h, queue_name="secret")
    sh = await scoped_key(api, tenant["org_id"], ["allowed"])
    listed = (await api.client.get(S, headers=sh)).json()
    assert [s["id"] for s in listed] == [mine["id"]]
    assert (await api.client.get(f"{S}/{other['id']}", headers=sh)).status_code == 404
    assert (await api.client.post(f"{S}/{other['id']}/trigger", headers=sh)).status_code == 404
    assert (await api.client.delete(f"{S}/{other['id']}", headers=sh)).status_code == 404
    resp = await api.client.post(S, json=body(queue_name="secret"), headers=sh)
    assert resp.status_code == 403 and resp.json()["code"] == "ACCESS_DENIED"
    assert (await api.client.post(S, json=body(queue_name="allowed"), headers=sh)).status_code == 201


async def test_other_organization_sees_nothing(api: Api, tenant: dict[str, Any]) -> None:
    sid = (await create(api, tenant["headers"]))["id"]
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    assert (await api.client.get(S, headers=oh)).json() == []
    assert (await api.client.get(f"{S}/{sid}", headers=oh)).status_code == 404
    assert (await api.client.post(f"{S}/{sid}/trigger", headers=oh)).status_code == 404


async def test_schedule_cap_on_create_and_resume(api: Api) -> None:
    org = await api.create_org()  # free plan: max_schedules = 1
    h = api.as_key(org["api_key"]["key"])
    first = await create(api, h, queue_name="q1")
    resp = await api.client.post(S, json=body(queue_name="q1"), headers=h)
    assert resp.status_code == 429, resp.text
    err = resp.json()
    assert (err["code"], err["resource"], err["current"], err["limit"]) == ("QUOTA_EXCEEDED", "schedules", 1, 1)
    assert "retry-after" not in resp.headers
    await api.client.post(f"{S}/{first['id']}/pause", headers=h)
    second = await create(api, h, queue_name="q1")
    resp = await api.client.post(f"{S}/{first['id']}/resume", headers=h)
    assert resp.status_code == 429 and resp.json()["resource"] == "schedules"
    resp = await api.client.put(f"{S}/{first['id']}", json={"is_active": True}, headers=h)
    assert resp.status_code == 429
    assert second


async def test_new_queue_over_the_queue_cap(api: Api) -> None:
    org = await api.create_org()  # free plan: 2 queues
    h = api.as_key(org["api_key"]["key"])
    for q in ("q1", "q2"):
        resp = await api.client.post("/api/v1/jobs", json={"queue_name": q, "payload": {}}, headers=h)
        assert resp.status_code == 201
    resp = await api.client.post(S, json=body(queue_name="q3"), headers=h)
    assert resp.status_code == 429 and resp.json()["resource"] == "queues"


async def test_trigger_refused_by_daily_quota(api: Api) -> None:
    org = await api.create_org()
    h = api.as_key(org["api_key"]["key"])
    sid = (await create(api, h, queue_name="q1"))["id"]
    async with api.state.pool.acquire() as c:
        await c.execute(
            """INSERT INTO organization_usage (organization_id, jobs_created_today, last_daily_reset)
               VALUES ($1, 1000, (now() AT TIME ZONE 'UTC')::date)
               ON CONFLICT (organization_id) DO UPDATE SET jobs_created_today = 1000,
                   last_daily_reset = EXCLUDED.last_daily_reset""",
            org["organization"]["id"],
        )
    resp = await api.client.post(f"{S}/{sid}/trigger", headers=h)
    assert resp.status_code == 429 and resp.json()["resource"] == "jobs_per_day"
    got = (await api.client.get(f"{S}/{sid}", headers=h)).json()
    assert got["run_count"] == 0  # nothing changed
    assert (await api.client.get(f"{S}/{sid}/history", headers=h)).json() == []


# ---- bad input: each a precise 4xx ------------------------------------------------------

BAD_CRON = [
    ("* * * *", "expected 5 fields"),
    ("* * * * * * *", "got 7"),
    ("61 * * * *", "minute field: value 61 is out of range 0-59"),
    ("* 25 * * *", "hour field: value 25"),
    ("* * 0 * *", "day of month field: value 0"),
    ("* * * 13 *", "month field: value 13"),
    ("* * * * 9", "day of week field: value 9"),
    ("*/0 * * * *", "step 0"),
    ("5-1 * * * *", "reversed"),
    ("* * ? * *", "'?' is not supported"),
    ("0 0 L * *", "'L' is not supported"),
    ("0 0 * * 1#2", "'#' is not supported"),
    ("@reboot", "unknown macro"),
    ("0 0 30 2 *", "never matches a date"),
    ("", "empty"),
    ("* " * 60, "at most 100 characters"),
]


@pytest.mark.parametrize(("cron", "message"), BAD_CRON)
async def test_bad_cron_is_400_saying_what_is_wrong(
    api: Api, tenant: dict[str, Any], cron: str, message: str
) -> None:
    h = tenant["headers"]
    resp = await api.client.post(S, json=body(cron_expression=cron), headers=h)
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["code"] == "VALIDATION_ERROR" and err["details"][0]["field"] == "cron_expression"
    assert "Invalid cron expression" in err["message"] and message in err["message"], err
    sid = (await create(api, h))["id"]
    resp = await api.client.put(f"{S}/{sid}", json={"cron_expression": cron}, headers=h)
    assert resp.status_code == 400 and message in resp.json()["message"]


@pytest.mark.parametrize(
    ("tz", "message"),
    [("Mars/Olympus", "unknown timezone 'Mars/Olympus'"), ("+15:00", "between -12:00 and +14:00"),
     ("", "non-empty"), ("../../etc/passwd", "unknown timezone"), ("localtime", "unknown timezone")],
)
async def test_unknown_timezone_is_400_at_create_and_update(
    api: Api, tenant: dict[str, Any], tz: str, message: str
) -> None:
    h = tenant["headers"]
    resp = await api.client.post(S, json=body(timezone=tz), headers=h)
    assert resp.status_code == 400, resp.text
    assert resp.json()["details"][0]["field"] == "timezone" and message in resp.json()["message"]
    sid = (await create(api, h))["id"]
    resp = await api.client.put(f"{S}/{sid}", json={"timezone": tz}, headers=h)
    assert resp.status_code == 400 and message in resp.json()["message"]


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"payload_template": ...}, 422, "payload_template"),
        ({"payload_template": None}, 400, "payload_template"),
        ({"name": ...}, 422, "name"),
        ({"name": ""}, 400, "name"),
        ({"name": "x" * 256}, 400, "name"),
        ({"description": "x" * 1001}, 400, "description"),
        ({"cron_expression": ...}, 422, "cron_expression"),
        ({"cron_expression": 5}, 422, "cron_expression"),
        ({"queue_name": ...}, 422, "queue_name"),
        ({"queue_name": "-bad"}, 400, "queue_name"),
        ({"queue_name": "q" * 101}, 400, "queue_name"),
        ({"priority": 101}, 400, "priority"),
        ({"priority": "1"}, 422, "priority"),
        ({"max_retries": -1}, 400, "max_retries"),
        ({"timeout_seconds": 0}, 400, "timeout_seconds"),
        ({"timeout_seconds": 86401}, 400, "timeout_seconds"),
        ({"tags": "urgent"}, 422, "tags"),
        ({"timezone": 3}, 422, "timezone"),
    ],
)
async def test_bad_fields(
    api: Api, tenant: dict[str, Any], fields: dict[str, Any], status: int, field: str
) -> None:
    resp = await api.client.post(S, json=body(**fields), headers=tenant["headers"])
    assert resp.status_code == status, resp.text
    assert resp.json()["details"][0]["field"].split(".")[0] == field, resp.json()


async def test_empty_and_huge_templates(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    resp = await api.client.post(S, content=b"", headers={**h, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["code"] == "INVALID_JSON"
    resp = await api.client.post(S, content=b"{", headers={**h, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["code"] == "INVALID_JSON"
    resp = await api.client.post(S, json=[1], headers=h)
    assert resp.status_code == 422
    huge = {"blob": "x" * (1024 * 1024)}
    resp = await api.client.post(S, json=body(payload_template=huge), headers=h)
    assert resp.status_code == 413 and resp.json()["code"] == "PAYLOAD_TOO_LARGE", resp.text
    resp = await api.client.post(S, json=body(payload_template={"s": "a\u0000b"}), headers=h)
    assert resp.status_code == 400
    resp = await api.client.post(S, json=body(metadata={"m": "x" * 70000}), headers=h)
    assert resp.status_code == 400 and "metadata" in resp.json()["message"]
    # {} and [] and 0 are JSON values: accepted (each job gets that payload)
    for template in ({}, [], 0, "text"):
        assert (await api.client.post(S, json=body(payload_template=template), headers=h)).status_code == 201
    sid = (await create(api, h))["id"]
    resp = await api.client.put(f"{S}/{sid}", json={"payload_template": huge}, headers=h)
    assert resp.status_code == 413
    resp = await api.client.put(f"{S}/{sid}", json={"payload_template": None}, headers=h)
    assert resp.status_code == 400 and resp.json()["details"][0]["field"] == "payload_template"
    resp = await api.client.put(f"{S}/{sid}", json={"name": None}, headers=h)
    assert resp.status_code == 400 and resp.json()["details"][0]["field"] == "name"


async def test_plan_payload_cap(api: Api) -> None:
    org = await api.create_org()  # free: 64 KiB
    h = api.as_key(org["api_key"]["key"])
    resp = await api.client.post(S, json=body(payload_template={"b": "x" * 70000}), headers=h)
    assert resp.status_code == 413 and resp.json()["limit"] == 65536


async def test_accepted_dialect_extensions(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    for expr in ("@daily", "@hourly", "0 9 * * MON-FRI", "0 0 1 JAN *", "*/10 * * * * *",
                 "0 0 * * 7", "45/5 * * * *"):
        resp = await api.client.post(S, json=body(cron_expression=expr), headers=h)
        assert resp.status_code == 201, (expr, resp.text)
    # whitespace is normalized in what is stored
    assert (await create(api, h, cron_expression=" 0  9 * * 1 "))["cron_expression"] == "0 9 * * 1"
    assert (await create(api, h, timezone="america/new_york"))["timezone"] == "America/New_York"


async def test_openapi_documents_the_routes(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    post = doc["paths"]["/api/v1/schedules"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"name", "cron_expression", "timezone", "payload_template"} <= set(schema["properties"])
    assert {"201", "400", "401", "403", "413", "422", "429"} <= set(post["responses"])
    assert "/api/v1/schedules/{schedule_id}/history" in doc["paths"]
