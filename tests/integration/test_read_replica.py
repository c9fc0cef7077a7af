"""DATABASE_READ_URL: list, stats and dashboard reads come from the read pool (a replica);
writes, claims and authentication stay on the primary. The "replica" here is a second database
cloned from the primary before the app starts, so which one answered is visible."""

from __future__ import annotations

import asyncpg

from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.pool import _init_connection
from tests.conftest import _api, make_settings
from tests.integration.jobs_support import claim, create_job


async def test_reads_from_replica_writes_to_primary(db_url: str, pg_server: EmbeddedPostgres) -> None:
    replica_name = db_url.rsplit("/", 1)[1] + "_replica"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {replica_name} TEMPLATE {db_url.rsplit('/', 1)[1]}")
    finally:
        await admin.close()
    replica_url = pg_server.dsn(replica_name)
    try:
        settings = make_settings(db_url, database_read_url=replica_url)
        async for api in _api(settings, settings.database_url or db_url):
            assert api.state.read_pool is not None
            created = await api.create_org()
            org_id = created["organization"]["id"]
            h = api.as_key(created["api_key"]["key"])
            async with api.state.pool.acquire() as c:
                await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1", org_id)
            on_primary = await create_job(api, h, queue_name="rq")
            replica = await asyncpg.connect(replica_url)
            try:
                await _init_connection(replica)
                await replica.execute(
                    "INSERT INTO organizations (id, name, slug) VALUES ($1, 'r', $2)", org_id, f"r{org_id[:8]}")
                only_on_replica = await replica.fetchval(
                    "INSERT INTO jobs (id, organization_id, queue_name, payload) "
                    "VALUES (gen_random_uuid()::text, $1, 'rq', '{}') RETURNING id", org_id)
            finally:
                await replica.close()
            listed = (await api.client.get("/api/v1/jobs", headers=h)).json()
            assert [j["id"] for j in listed] == [only_on_replica]
            stats = (await api.client.get("/api/v1/jobs/stats", headers=h)).json()
            assert (stats["pending"], stats["total"]) == (1, 1)
            dash = await api.client.get("/api/v1/dashboard", headers=h)
            assert dash.status_code == 200, dash.text
            # the job's own page, claims and writes are the primary's
            assert (await api.client.get(f"/api/v1/jobs/{on_primary}", headers=h)).status_code == 200
            assert [j["id"] for j in await claim(api, h, queue="rq")] == [on_primary]
    finally:
        admin = await asyncpg.connect(pg_server.dsn())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {replica_name} WITH (FORCE)")
        finally:
            await admin.close()
