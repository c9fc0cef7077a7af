"""The service behind a real PgBouncer in transaction mode (the guide's default path): requests,
background loops and LISTEN work, with the statement cache off, and the traffic does go through
PgBouncer. (CI also runs all of tests/integration once with SPOOLED_TEST_PGBOUNCER=1.)"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.conftest as harness
from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.scheduler.loops import default_loops, run_once
from tests.conftest import _api, make_settings
from tests.integration.jobs_support import ack, claim, create_job
from tests.support import PgBouncer


@pytest.fixture(scope="module")
def bouncer(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    if harness.PGBOUNCER is not None:  # SPOOLED_TEST_PGBOUNCER=1: the session's
        yield harness.PGBOUNCER
        return
    server = PgBouncer(tmp_path_factory.mktemp("bouncer"), pg_server.port or 0, run_as=pg_server._run_as)
    yield server
    server.stop()


def transactions_through(bouncer: PgBouncer, database: str) -> int:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(bouncer.port), "-U", "postgres", "-d", "pgbouncer",
         "-At", "-F", "|", "-c", "SHOW STATS"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        fields = line.split("|")
        if fields[0] == database:
            return int(fields[1])  # total_xact_count
    return 0


async def test_service_through_pgbouncer_transaction_mode(
    db_url: str, bouncer: PgBouncer, tmp_path: Path
) -> None:
    database = db_url.rsplit("/", 1)[1]
    settings = make_settings(db_url, database_url=bouncer.url(db_url), database_direct_url=db_url,
                             database_statement_cache=False)
    async for api in _api(settings, settings.database_url):
        created = await api.create_org()
        h = api.as_key(created["api_key"]["key"])
        async with api.state.pool.acquire() as c:
            await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1",
                            created["organization"]["id"])
        jobs = [await create_job(api, h, queue_name="pgb") for _ in range(5)]
        claimed = await claim(api, h, queue="pgb", limit=5)
        assert sorted(j["id"] for j in claimed) == sorted(jobs)
        # many requests on a few server connections: no prepared statement or SET leaks
        results = await asyncio.gather(*[
            ack(api, h, j["id"], "complete", worker_id="w1", lease_id=j["lease_id"]) for j in claimed])
        assert [r.status_code for r in results] == [200] * 5
        stats = (await api.client.get("/api/v1/jobs/stats", headers=h)).json()
        assert stats["completed"] == 5
        for loop in default_loops(api.state):  # advisory xact locks through the pooler
            assert await run_once(api.state.pool, loop)
        assert api.state.listener is None or await api.state.listener.wait_connected(10)
    assert transactions_through(bouncer, database) > 20
