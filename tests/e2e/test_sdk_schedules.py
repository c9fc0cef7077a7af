"""`client.schedules.*` of the official Python SDK against the real server (with and without
Redis), including cron fires by the server's own firing loop; and the Node SDK's schedule calls
at wire level (the npm package `@spooled/sdk` cannot be installed here: see COORDINATION.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from spooled.async_client import AsyncSpooledClient
from spooled.client import SpooledClient
from spooled.errors import NotFoundError, ValidationError
from spooled.types.schedules import Schedule, ScheduleRun

from tests.e2e.conftest import Tenant


def wait_for_runs(client: SpooledClient, schedule_id: str, count: int, timeout: float = 5.0) -> list[ScheduleRun]:
    deadline = time.monotonic() + timeout
    while True:
        runs = client.schedules.get_history(schedule_id, limit=50)
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, runs
        time.sleep(0.1)


def test_schedule_lifecycle_with_the_sdk(client: SpooledClient) -> None:
    created = client.schedules.create({
        "name": "nightly-report",
        "description": "every night at 03:00 Berlin time",
        "cron_expression": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "queue_name": "reports",
        "payload_template": {"report": "daily"},
        "priority": 5,
        "tags": {"team": "data"},
        "metadata": {"owner": "ada"},
    })
    assert created.name == "nightly-report" and created.cron_expression == "0 3 * * *"
    assert created.next_run_at is not None
    local = created.next_run_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 0)

    got = client.schedules.get(created.id)
    assert isinstance(got, Schedule)
    assert (got.timezone, got.queue_name, got.priority, got.is_active, got.run_count) == (
        "Europe/Berlin", "reports", 5, True, 0)
    assert got.payload_template == {"report": "daily"} and got.tags == {"team": "data"}
    assert (got.max_retries, got.timeout_seconds) == (3, 300)

    other = client.schedules.create({"name": "other", "cron_expression": "*/5 * * * *",
                                     "queue_name": "misc", "payload_template": {}})
    assert [s.id for s in client.schedules.list()] == [other.id, created.id]
    assert [s.id for s in client.schedules.list({"queue_name": "reports"})] == [created.id]
    assert [s.id for s in client.schedules.list({"limit": 1, "offset": 1})] == [created.id]

    updated = client.schedules.update(created.id, {
        "name": "renamed", "cron_expression": "30 6 * * 1-5", "timezone": "America/New_York",
        "queue_name": "not-applied", "priority": -1,
    })
    assert (updated.name, updated.queue_name, updated.priority) == ("renamed", "reports", -1)
    ny = updated.next_run_at.astimezone(ZoneInfo("America/New_York"))  # type: ignore[union-attr]
    assert (ny.hour, ny.minute) == (6, 30) and ny.isoweekday() <= 5

    paused = client.schedules.pause(created.id)
    assert paused.is_active is False
    assert [s.id for s in client.schedules.list({"is_active": False})] == [created.id]
    assert [s.id for s in client.schedules.list({"is_active": True})] == [other.id]
    resumed = client.schedules.resume(created.id)
    assert resumed.is_active is True

    trig = client.schedules.trigger(created.id)
    assert trig.triggered_at <= datetime.now(UTC) + timedelta(seconds=5)
    job = client.jobs.get(trig.job_id)
    assert (job.queue_name, job.payload, job.priority) == ("reports", {"report": "daily"}, -1)
    [run] = client.schedules.get_history(created.id)
    assert (run.status, run.job_id, run.schedule_id, run.error_message) == (
        "completed", trig.job_id, created.id, None)
    assert client.schedules.get(created.id).run_count == 1

    client.schedules.delete(created.id)
    with pytest.raises(NotFoundError):
        client.schedules.get(created.id)
    with pytest.raises(NotFoundError):
        client.schedules.trigger(created.id)
    assert [s.id for s in client.schedules.list()] == [other.id]


def test_the_server_fires_a_cron_schedule(client: SpooledClient) -> None:
    created = client.schedules.create({
        "name": "every-second", "cron_expression": "* * * * * *", "queue_name": "ticks",
        "payload_template": {"tick": True},
    })
    runs = wait_for_runs(client, created.id, 2)
    assert all(r.status == "completed" and r.job_id for r in runs)
    client.schedules.pause(created.id)
    jobs = client.jobs.list({"queue_name": "ticks", "limit": 100})
    assert len(jobs) >= 2 and {j.id for j in jobs} >= {r.job_id for r in runs}
    got = client.jobs.get(runs[0].job_id)  # type: ignore[arg-type]
    assert got.payload == {"tick": True}
    schedule = client.schedules.get(created.id)
    assert schedule.run_count >= 2 and schedule.last_run_at is not None


def test_sdk_errors(client: SpooledClient) -> None:
    base = {"name": "x", "queue_name": "q", "payload_template": {"a": 1}}
    with pytest.raises(ValidationError) as err:
        client.schedules.create({**base, "cron_expression": "61 * * * *"})
    assert "minute field: value 61 is out of range 0-59" in str(err.value)
    with pytest.raises(ValidationError) as err:
        client.schedules.create({**base, "cron_expression": "* * * * *", "timezone": "Mars/Base"})
    assert "unknown timezone 'Mars/Base'" in str(err.value)
    with pytest.raises(NotFoundError):
        client.schedules.get("00000000-0000-4000-8000-000000000000")


async def test_async_sdk_schedules(tenant: Tenant) -> None:
    async with AsyncSpooledClient(api_key=tenant.key, base_url=tenant.base_url) as client:
        created = await client.schedules.create({
            "name": "async", "cron_expression": "0 12 * * *", "timezone": "+05:30",
            "queue_name": "aq", "payload_template": [1, 2, 3],
        })
        got = await client.schedules.get(created.id)
        assert got.timezone == "+05:30" and got.payload_template == [1, 2, 3]
        assert got.next_run_at is not None
        assert got.next_run_at.astimezone(UTC).strftime("%H:%M") == "06:30"
        trig = await client.schedules.trigger(created.id)
        history = await client.schedules.get_history(created.id)
        assert [h.job_id for h in history] == [trig.job_id]
        await client.schedules.delete(created.id)
        assert await client.schedules.list() == []


# ---- the Node SDK's calls, at wire level --------------------------------------------------
# `@spooled/sdk` converts its camelCase options to snake_case (values under payload_template,
# tags and metadata are left as they are), sends `Content-Type: application/json` and
# `Accept: application/json` on every request including body-less POSTs, and converts the
# snake_case answers back to camelCase (CONTRACT §1, §6 rows 65–73).

NODE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json",
                "User-Agent": "spooled-node/1.0.40"}


def test_node_sdk_schedule_calls_at_wire_level(tenant: Tenant) -> None:
    h = {**NODE_HEADERS, "Authorization": f"Bearer {tenant.key}"}
    with httpx.Client(base_url=f"{tenant.base_url}/api/v1", headers=h, timeout=10) as http:
        # client.schedules.create({name, cronExpression, timezone, queueName, payloadTemplate, ...})
        resp = http.post("/schedules", json={
            "name": "node", "cron_expression": "*/15 * * * *", "timezone": "Asia/Tokyo",
            "queue_name": "node-q", "payload_template": {"camelCaseKept": {"innerKey": 1}},
            "priority": 2, "max_retries": 1, "timeout_seconds": 30,
            "tags": {"sourceTag": "x"}, "metadata": {"createdBy": "node"},
        })
        assert resp.status_code == 201, resp.text
        created = resp.json()
        assert created["payload_template"] == {"camelCaseKept": {"innerKey": 1}}  # never re-cased
        sid = created["id"]
        for key in ("id", "name", "cron_expression", "next_run_at"):
            assert key in created
        # client.schedules.list({queueName, isActive, limit, offset})
        resp = http.get("/schedules", params={"queue_name": "node-q", "is_active": "true",
                                               "limit": 10, "offset": 0})
        assert [s["id"] for s in resp.json()] == [sid]
        assert http.get(f"/schedules/{sid}").json()["metadata"] == {"createdBy": "node"}
        # client.schedules.update(id, {...}) → PUT
        resp = http.put(f"/schedules/{sid}", json={"is_active": False, "description": "n"})
        assert resp.status_code == 200 and resp.json()["is_active"] is False
        # pause / resume / trigger: body-less POSTs with a JSON content type ({} or nothing)
        assert http.post(f"/schedules/{sid}/resume", content=b"").json()["is_active"] is True
        assert http.post(f"/schedules/{sid}/pause", json={}).json()["is_active"] is False
        resp = http.post(f"/schedules/{sid}/trigger", content=b"")
        assert resp.status_code == 200 and set(resp.json()) == {"job_id", "triggered_at"}
        # client.schedules.getHistory(id, limit)
        runs = http.get(f"/schedules/{sid}/history", params={"limit": 20}).json()
        assert [r["status"] for r in runs] == ["completed"] and runs[0]["job_status"] == "pending"
        resp = http.post("/schedules", json={"name": "bad", "cron_expression": "* * *",
                                              "queue_name": "q", "payload_template": {}})
        assert resp.status_code == 400 and resp.json()["code"] == "VALIDATION_ERROR"
        assert http.delete(f"/schedules/{sid}").status_code == 204
        assert http.get(f"/schedules/{sid}").status_code == 404
