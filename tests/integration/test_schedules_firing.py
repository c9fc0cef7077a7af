"""The cron firing loop (CONTRACT §9.3, §15): one transaction per fire, catch-up, failed runs
that never stop the others, no double fire between replicas, and waking at the due time."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from spooled_backend.core.events import NoEvents
from spooled_backend.schedules import service
from spooled_backend.schedules.tasks import ScheduleFirer
from tests.conftest import Api, _api
from tests.integration.jobs_support import set_plan

S = "/api/v1/schedules"


async def create(api: Api, h: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": "s", "cron_expression": "0 3 * * *", "queue_name": "cron",
            "payload_template": {"from": "cron"}, **fields}
    resp = await api.client.post(S, json=body, headers=h)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def make_due(api: Api, sid: str, ago: str = "1 second") -> datetime:
    async with api.state.pool.acquire() as c:
        due: datetime = await c.fetchval(
            "UPDATE schedules SET next_run_at = date_trunc('second', now()) - $2::text::interval"
            " WHERE id = $1 RETURNING next_run_at", sid, ago,
        )
    return due


async def runs(api: Api, sid: str | None = None) -> list[dict[str, Any]]:
    async with api.state.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT * FROM schedule_runs WHERE $1::text IS NULL OR schedule_id = $1"
            " ORDER BY started_at", sid,
        )
    return [dict(r) for r in rows]


async def schedule_row(api: Api, sid: str) -> dict[str, Any]:
    async with api.state.pool.acquire() as c:
        return dict(await c.fetchrow("SELECT * FROM schedules WHERE id = $1", sid))


class Recorder(NoEvents):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def job_created(self, *args: Any) -> None:
        self.calls.append(("job_created", args))

    def schedule_triggered(self, *args: Any) -> None:
        self.calls.append(("schedule_triggered", args))


async def test_a_due_schedule_fires_once(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    s = await create(api, h, cron_expression="*/5 * * * *", priority=4, tags=["t"])
    due = await make_due(api, s["id"])
    recorder = Recorder()
    firer = ScheduleFirer(dataclasses.replace(api.state, events=recorder))
    assert await firer.fire_all_due() == 1
    assert await firer.fire_all_due() == 0
    [run] = await runs(api, s["id"])
    assert run["status"] == "completed" and run["error_message"] is None
    assert run["scheduled_for"] == due and run["completed_at"] is not None
    async with api.state.pool.acquire() as c:
        job = await c.fetchrow("SELECT * FROM jobs WHERE id = $1", run["job_id"])
    assert job["payload"] == {"from": "cron"} and job["queue_name"] == "cron"
    assert (job["priority"], job["tags"], job["status"]) == (4, ["t"], "pending")
    row = await schedule_row(api, s["id"])
    assert row["run_count"] == 1 and row["last_run_at"] == run["started_at"]
    nxt = row["next_run_at"]
    assert nxt > datetime.now(UTC) and nxt.minute % 5 == 0 and nxt.second == 0
    # events left after the commit: job.created then schedule.triggered
    assert [c[0] for c in recorder.calls] == ["job_created", "schedule_triggered"]
    assert recorder.calls[1][1] == (tenant["org_id"], s["id"], run["job_id"], "cron")
    history = (await api.client.get(f"{S}/{s['id']}/history", headers=h)).json()
    assert [(r["status"], r["job_id"], r["job_status"]) for r in history] == [
        ("completed", run["job_id"], "pending")]


async def test_catch_up_after_downtime_runs_once_then_the_next_future_time(
    api: Api, tenant: dict[str, Any]
) -> None:
    s = await create(api, tenant["headers"], cron_expression="* * * * *")
    await make_due(api, s["id"], "3 hours")  # 180 missed minutes
    firer = ScheduleFirer(api.state)
    assert await firer.fire_all_due() == 1
    assert len(await runs(api, s["id"])) == 1
    row = await schedule_row(api, s["id"])
    now = datetime.now(UTC)
    assert now < row["next_run_at"] <= now + timedelta(seconds=61)
    assert row["next_run_at"].second == 0


async def test_paused_and_future_schedules_do_not_fire(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    paused = await create(api, h, cron_expression="* * * * *")
    await make_due(api, paused["id"])
    await api.client.post(f"{S}/{paused['id']}/pause", headers=h)
    future = await create(api, h, cron_expression="* * * * *")
    # Due in 30 s, not now: pinned, so a test straddling a minute boundary (a slow machine
    # reaching 12:00:00 between the create and the fire) cannot make it due.
    await make_due(api, future["id"], ago="-30 seconds")
    firer = ScheduleFirer(api.state)
    assert await firer.fire_all_due() == 0
    assert await runs(api) == []
    delay = await firer.seconds_to_next()
    assert delay is not None and 0 < delay <= 60


async def test_bad_schedules_record_failed_runs_and_never_stop_the_others(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    good = await create(api, h, name="good", cron_expression="*/5 * * * *")
    bad_cron = await create(api, h, name="bad-cron", cron_expression="*/5 * * * *")
    bad_zone = await create(api, h, name="bad-zone", cron_expression="*/5 * * * *")
    too_big = await create(api, h, name="too-big", payload_template={"b": "x" * 70000})
    # a poor org: on the free plan, over its daily quota
    poor = await api.create_org()
    ph = api.as_key(poor["api_key"]["key"])
    quota = await create(api, ph, name="quota", queue_name="q1")
    async with api.state.pool.acquire() as c:
        # rows broken behind the API's back (a manual edit, a tz database without the zone)
        await c.execute("UPDATE schedules SET cron_expression = 'every day' WHERE id = $1", bad_cron["id"])
        await c.execute("UPDATE schedules SET timezone = 'Gone/Away' WHERE id = $1", bad_zone["id"])
        await c.execute(
            """INSERT INTO organization_usage (organization_id, jobs_created_today, last_daily_reset)
               VALUES ($1, 1000, (now() AT TIME ZONE 'UTC')::date)
               ON CONFLICT (organization_id) DO UPDATE SET jobs_created_today = 1000,
                   last_daily_reset = EXCLUDED.last_daily_reset""",
            poor["organization"]["id"],
        )
    await set_plan(api, tenant["org_id"], "free")  # the 70 kB template is now over the 64 KiB cap
    for s in (good, bad_cron, bad_zone, too_big, quota):
        await make_due(api, s["id"])
    firer = ScheduleFirer(api.state)
    assert await firer.fire_all_due() == 5
    assert await firer.fire_all_due() == 0  # nothing left due: no hot loop on bad rows
    delay = await firer.seconds_to_next()
    assert delay is None or delay > 0

    by_name = {}
    for s in (good, bad_cron, bad_zone, too_big, quota):
        [run] = await runs(api, s["id"])
        by_name[s["name"]] = (run, await schedule_row(api, s["id"]))
    run, row = by_name["good"]
    assert run["status"] == "completed" and row["run_count"] == 1
    for name in ("bad-cron", "bad-zone"):
        run, row = by_name[name]
        assert run["status"] == "failed" and run["job_id"] is None
        assert run["error_message"].startswith("Invalid schedule, no further runs until it is updated")
        assert row["next_run_at"] is None and row["run_count"] == 0
    assert "got 2" in by_name["bad-cron"][0]["error_message"]
    assert "unknown timezone 'Gone/Away'" in by_name["bad-zone"][0]["error_message"]
    run, row = by_name["too-big"]
    assert run["status"] == "failed" and "exceeds the limit of 65536 bytes" in run["error_message"]
    assert row["next_run_at"] > datetime.now(UTC) and row["run_count"] == 0
    run, row = by_name["quota"]
    assert run["status"] == "failed" and "jobs per day limit reached" in run["error_message"]
    assert row["next_run_at"] > datetime.now(UTC)
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs WHERE queue_name = 'cron'") == 1
    # the history route shows the failure and its reason
    hist = (await api.client.get(f"{S}/{quota['id']}/history", headers=ph)).json()
    assert hist[0]["status"] == "failed" and "jobs per day" in hist[0]["error_message"]
    # fixing the row through the API brings it back
    resp = await api.client.put(f"{S}/{bad_cron['id']}", json={"cron_expression": "* * * * *"}, headers=h)
    assert resp.status_code == 200 and resp.json()["next_run_at"] is not None


async def test_an_unexpected_error_is_quarantined_and_recorded(
    api: Api, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = tenant["headers"]
    broken = await create(api, h, name="broken", cron_expression="*/5 * * * *")
    fine = await create(api, h, name="fine", cron_expression="*/5 * * * *")
    real = service.fire_due

    async def fire_due(conn: Any, settings: Any, events: Any, row: Any) -> Any:
        if row["id"] == broken["id"]:
            raise RuntimeError("a bug")
        return await real(conn, settings, events, row)

    monkeypatch.setattr(service, "fire_due", fire_due)
    for s in (broken, fine):
        await make_due(api, s["id"])
    firer = ScheduleFirer(api.state, drainers=1)
    assert await firer.fire_all_due() == 2
    [bad_run] = await runs(api, broken["id"])
    assert bad_run["status"] == "failed" and bad_run["error_message"] == "Internal error while firing: RuntimeError"
    assert (await schedule_row(api, broken["id"]))["next_run_at"] > datetime.now(UTC)
    [ok_run] = await runs(api, fine["id"])
    assert ok_run["status"] == "completed"
    # quarantined in this process even if it were due again
    await make_due(api, broken["id"])
    assert await firer.fire_all_due() == 0


async def test_two_replicas_never_fire_a_due_time_twice(
    api: Api, tenant: dict[str, Any], db_url: str
) -> None:
    h = tenant["headers"]
    ids = [(await create(api, h, name=f"s{i}", cron_expression="* * * * *"))["id"] for i in range(40)]
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE schedules SET next_run_at = date_trunc('second', now()) - interval '1 s'")
    async for other in _api(api.state.settings, db_url):
        a, b = ScheduleFirer(api.state), ScheduleFirer(other.state)
        counts = await asyncio.gather(a.fire_all_due(), b.fire_all_due(), a.fire_all_due())
    assert sum(counts) == 40
    all_runs = await runs(api)
    assert len(all_runs) == 40 and {r["schedule_id"] for r in all_runs} == set(ids)
    assert all(r["status"] == "completed" for r in all_runs)
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs") == 40


async def test_the_database_refuses_a_second_run_for_the_same_due_time(
    api: Api, tenant: dict[str, Any]
) -> None:
    import asyncpg

    s = await create(api, tenant["headers"])
    async with api.state.pool.acquire() as c:
        due = datetime(2030, 1, 1, tzinfo=UTC)
        sql = ("INSERT INTO schedule_runs (organization_id, schedule_id, status, scheduled_for)"
               " VALUES ($1, $2, 'completed', $3)")
        await c.execute(sql, tenant["org_id"], s["id"], due)
        with pytest.raises(asyncpg.UniqueViolationError):
            await c.execute(sql, tenant["org_id"], s["id"], due)


# ---- waking at the due time -------------------------------------------------------------


@pytest_asyncio.fixture
async def running(api: Api) -> AsyncIterator[ScheduleFirer]:
    firer = ScheduleFirer(api.state)
    await firer.start()
    yield firer
    await firer.stop()


async def lateness_of(api: Api, sid: str, count: int, timeout: float = 6.0) -> list[float]:
    """Seconds between each run's due time and its start, once `count` runs exist."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await runs(api, sid)
        if len(found) >= count:
            return [(r["started_at"] - r["scheduled_for"]).total_seconds() for r in found[:count]]
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)


async def test_fires_within_100_ms_of_the_due_second(
    api: Api, tenant: dict[str, Any], running: ScheduleFirer
) -> None:
    s = await create(api, tenant["headers"], cron_expression="* * * * * *")  # every second
    late = sorted(await lateness_of(api, s["id"], 5, timeout=8.0))
    # the target is 100 ms; the machine running the suite may be busy, so the median holds it
    assert late[0] >= 0 and late[2] < 0.1 and late[-1] < 1.0, late


async def test_a_new_schedule_wakes_a_sleeping_loop(
    api: Api, tenant: dict[str, Any], running: ScheduleFirer
) -> None:
    # nothing is due for an hour: the loop sleeps on its 10 s backstop
    await create(api, tenant["headers"], cron_expression="0 * * * *")
    await asyncio.sleep(0.3)
    s = await create(api, tenant["headers"], cron_expression="* * * * * *")
    late = await lateness_of(api, s["id"], 1, timeout=3.0)
    assert 0 <= late[0] < 1.0, late  # woken: the backstop alone would be up to 10 s late


async def test_another_replica_is_woken_by_notify(
    api: Api, tenant: dict[str, Any], db_url: str
) -> None:
    # the firing loop runs in a second app; the schedule is created through the first one,
    # whose in-process wake-up does not reach the second
    async for other in _api(api.state.settings, db_url):
        firer = ScheduleFirer(other.state)
        await firer.start()
        try:
            await asyncio.sleep(0.3)  # asleep on the backstop (no schedules)
            s = await create(api, tenant["headers"], cron_expression="* * * * * *")
            late = await lateness_of(api, s["id"], 1, timeout=3.0)
        finally:
            await firer.stop()
    assert 0 <= late[0] < 1.0, late  # woken by NOTIFY: the backstop alone would be up to 10 s
