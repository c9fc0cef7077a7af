"""Two `spooled-backend serve` processes on one database, both running the cron firing loop,
for a minute: every due second of every schedule fires exactly once (CONTRACT §9.3, §15)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from spooled_backend.db.embedded import EmbeddedPostgres
from tests.e2e.conftest import SERVER_ENV, stop_cleanly
from tests.e2e.server import ServerProcess

RUN_SECS = 60.0


@pytest.fixture
def shared_db(pg_server: EmbeddedPostgres, template_dsn: str) -> Iterator[str]:
    name = f"replicas_{int(time.time() * 1000)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name} TEMPLATE spooled_template"))
    yield pg_server.dsn(name)
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def two_servers(tmp_path: Path, shared_db: str) -> Iterator[list[ServerProcess]]:
    env = {**SERVER_ENV, "DATABASE_URL": shared_db, "DATABASE_MAX_CONNECTIONS": "10"}
    servers: list[ServerProcess] = []
    try:
        for i in range(2):  # one after the other: the first applies migrations and bootstraps
            server = ServerProcess(tmp_path / f"data{i}", env=dict(env))
            server.start()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            if server.proc is not None:
                stop_cleanly(server)


@pytest.mark.timeout(300)
def test_two_replicas_fire_each_due_second_once(two_servers: list[ServerProcess], shared_db: str) -> None:
    a, b = two_servers
    resp = httpx.post(f"{a.base_url}/api/v1/organizations",
                      json={"name": "Replicas", "slug": "replicas"}, timeout=10)
    assert resp.status_code == 201, resp.text
    key = resp.json()["api_key"]["key"]
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    # every second and every 2 seconds, created alternately through both servers
    for i, cron in enumerate(["* * * * * *"] * 4 + ["*/2 * * * * *"] * 2):
        base = (a if i % 2 == 0 else b).base_url
        resp = httpx.post(f"{base}/api/v1/schedules", headers=headers, timeout=10, json={
            "name": f"r{i}", "cron_expression": cron, "queue_name": "replicas",
            "payload_template": {"i": i},
        })
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    started = time.monotonic()
    time.sleep(RUN_SECS)
    for i, sid in enumerate(ids):
        base = (b if i % 2 == 0 else a).base_url
        assert httpx.post(f"{base}/api/v1/schedules/{sid}/pause", headers=headers, timeout=10).status_code == 200
    elapsed = time.monotonic() - started
    for server in two_servers:
        assert server.proc is not None and server.proc.poll() is None, server.output()

    async def read() -> tuple[list[asyncpg.Record], int, int]:
        conn = await asyncpg.connect(shared_db)
        try:
            runs = await conn.fetch(
                """SELECT schedule_id, job_id, status, error_message, scheduled_for,
                          EXTRACT(EPOCH FROM started_at - scheduled_for)::float8 AS late
                   FROM schedule_runs ORDER BY schedule_id, scheduled_for""")
            jobs = await conn.fetchval("SELECT count(*) FROM jobs WHERE queue_name = 'replicas'")
            distinct = await conn.fetchval(
                "SELECT count(DISTINCT (schedule_id, scheduled_for)) FROM schedule_runs")
            return runs, jobs, distinct
        finally:
            await conn.close()

    runs, jobs, distinct = asyncio.run(read())
    assert runs, "nothing fired"
    failed = [r for r in runs if r["status"] != "completed"]
    assert failed == [], failed[:5]  # a double fire would show as a failed "Internal error" run
    assert distinct == len(runs) == jobs  # one run and one job per due time, never two
    for sid, period in zip(ids, [1] * 4 + [2] * 2, strict=True):
        mine = [r for r in runs if r["schedule_id"] == sid]
        dues = [r["scheduled_for"] for r in mine]
        assert all(d.timestamp() % period == 0 for d in dues)
        # every due second of the run fired (catch-up may skip a second under heavy load)
        assert len(mine) >= int(elapsed / period * 0.9), (sid, len(mine), elapsed)
        assert len(mine) <= int(elapsed / period) + 2
    late = sorted(r["late"] for r in runs)
    assert late[0] >= 0
    # woken at the due time, not swept: a 10 s sweep would put the median near 5 s. (The 100 ms
    # target is held by test_schedules_firing.py and bench/schedule_lateness.py; two servers and
    # this test share 2 cores here, so the bound is looser.)
    assert late[len(late) // 2] < 0.5, late[len(late) // 2]
