"""Row-level security as the second lock (migration 0003, core/tenancy.py, core/deps.py).

The application filters every query by organization; these tests deliberately drop that filter
(`SELECT … FROM jobs` with no WHERE) inside a tenant transaction and check that PostgreSQL
itself still hides and protects the other organization's rows.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from spooled_backend.core import tenancy
from spooled_backend.core.deps import Auth, Conn
from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.migrate import upgrade_to_head
from spooled_backend.db.pool import _init_connection
from tests.conftest import Api, make_settings
from tests.integration.auth_support import bearer, enterprise_org, instance

_roles = itertools.count()


async def populate(api: Api, org: dict[str, Any]) -> None:
    """Rows in several tenant tables through the public API."""
    h = bearer(org["key"])
    for i in range(3):
        r = await api.client.post("/api/v1/jobs", json={"queue_name": f"q{i}", "payload": {"i": i}}, headers=h)
        assert r.status_code == 201, r.text
    r = await api.client.post(
        "/api/v1/workers/register", json={"queue_name": "q0", "hostname": "h1"}, headers=h
    )
    assert r.status_code == 201, r.text
    r = await api.client.post("/api/v1/api-keys", json={"name": "second"}, headers=h)
    assert r.status_code == 201, r.text


async def rls_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_policies WHERE schemaname = current_schema() "
        "AND policyname = 'tenant_isolation' ORDER BY 1"
    )
    return [r["tablename"] for r in rows]


async def test_every_tenant_table_has_the_policy(api: Api) -> None:
    async with api.state.pool.acquire() as conn:
        tables = await rls_tables(conn)
        with_org = await conn.fetch(
            "SELECT table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = current_schema() AND c.column_name = 'organization_id' "
            "AND t.table_type = 'BASE TABLE' ORDER BY 1"
        )
        assert tables == [r["table_name"] for r in with_org]
        for table in ("jobs", "job_history", "job_dependencies", "schedule_runs",
                      "outgoing_webhook_deliveries", "api_keys", "workers", "queue_config"):
            assert table in tables
        role = await conn.fetchrow(
            "SELECT rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = 'spooled_tenant'"
        )
        assert dict(role) == {"rolcanlogin": False, "rolbypassrls": False, "rolsuper": False}
    assert api.state.tenant_role == "spooled_tenant"


async def test_unfiltered_queries_in_a_tenant_transaction_see_only_that_tenant(api: Api) -> None:
    a, b = await enterprise_org(api), await enterprise_org(api)
    await populate(api, a)
    await populate(api, b)
    pool = api.state.pool
    async with pool.acquire() as conn:
        tables = await rls_tables(conn)
        totals = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
        own = {t: await conn.fetchval(f"SELECT count(*) FROM {t} WHERE organization_id = $1", a["org_id"])
               for t in tables}
    assert totals["jobs"] == 6 and own["jobs"] == 3
    async with pool.acquire() as conn:
        async with conn.transaction():
            await tenancy.bind_tenant(conn, a["org_id"], api.state.tenant_role)
            assert await conn.fetchval("SELECT current_user") == "spooled_tenant"
            # the application's filter deliberately left out:
            orgs = {r["organization_id"] for r in await conn.fetch("SELECT * FROM jobs")}
            assert orgs == {a["org_id"]}
            for table in tables:
                visible = await conn.fetchval(f"SELECT count(*) FROM {table}")
                assert visible == own[table], table
                foreign = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE organization_id = $1", b["org_id"]
                )
                assert foreign == 0, table
            # writes cannot reach the other tenant either
            assert await conn.execute("UPDATE jobs SET priority = 99") == "UPDATE 3"
            assert await conn.execute("DELETE FROM workers WHERE organization_id = $1", b["org_id"]) == "DELETE 0"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO jobs (organization_id, queue_name, payload) VALUES ($1, 'x', '{}')",
                        b["org_id"],
                    )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute("UPDATE jobs SET organization_id = $1", b["org_id"])
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute("SELECT count(*) FROM alembic_version")
        # the binding ended with the transaction: the pooled connection is clean again
        row = await conn.fetchrow(
            "SELECT current_user AS who, current_setting('app.current_org_id', true) AS org"
        )
        assert row["who"] == "postgres" and not row["org"]
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE priority = 99") == 3
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 6


async def test_tenant_role_without_an_organization_sees_nothing(api: Api) -> None:
    a = await enterprise_org(api)
    await populate(api, a)
    async with api.state.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('role', 'spooled_tenant', true)")
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0


def whoami_route(app: FastAPI) -> None:
    """A test-only route that skips the organization filter on purpose."""

    @app.get("/api/v1/_test/unfiltered")
    async def unfiltered(conn: Conn, auth: Auth) -> dict[str, Any]:
        rows = await conn.fetch("SELECT organization_id FROM jobs")
        return {
            "who": await conn.fetchval("SELECT current_user"),
            "org_setting": await conn.fetchval("SELECT current_setting('app.current_org_id', true)"),
            "orgs": sorted({r["organization_id"] for r in rows}),
            "count": len(rows),
        }


async def test_requests_run_bound_to_their_tenant(settings: Any, db_url: str) -> None:
    async with instance(settings, db_url, whoami_route) as api:
        a, b = await enterprise_org(api), await enterprise_org(api)
        await populate(api, a)
        await populate(api, b)
        for org in (a, b):
            resp = await api.client.get("/api/v1/_test/unfiltered", headers=bearer(org["key"]))
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"who": "spooled_tenant", "org_setting": org["org_id"],
                                   "orgs": [org["org_id"]], "count": 3}
        # an access JWT goes through the same binding
        login = await api.client.post("/api/v1/auth/login", json={"api_key": a["key"]})
        token = login.json()["access_token"]
        resp = await api.client.get("/api/v1/_test/unfiltered", headers=bearer(token))
        assert resp.json()["orgs"] == [a["org_id"]]


@pytest.mark.parametrize("granted", [True, False])
async def test_plain_non_superuser_owner(pg_server: EmbeddedPostgres, granted: bool) -> None:
    """A DATABASE_URL role that owns the schema but is not a superuser. With `spooled_tenant`
    granted by the DBA, migrations run as that role and requests are bound by RLS; without it,
    the service still works (application-level isolation) and says so at start."""
    n = next(_roles)
    role, database = f"plain_owner_{n}", f"plain_db_{n}"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
        await admin.execute(f"CREATE DATABASE {database} OWNER {role}")
        if granted:
            await admin.execute(f"GRANT spooled_tenant TO {role}")
    finally:
        await admin.close()
    dsn = pg_server.dsn(database).replace("postgres@", f"{role}@", 1)
    try:
        await asyncio.to_thread(upgrade_to_head, dsn)
        async with instance(make_settings(dsn), dsn, whoami_route) as api:
            assert api.state.tenant_role == ("spooled_tenant" if granted else None)
            a, b = await enterprise_org(api), await enterprise_org(api)
            await populate(api, a)
            await populate(api, b)
            resp = await api.client.get("/api/v1/_test/unfiltered", headers=bearer(b["key"]))
            if granted:
                assert resp.json() == {"who": "spooled_tenant", "org_setting": b["org_id"],
                                       "orgs": [b["org_id"]], "count": 3}
            else:  # the owner bypasses RLS: only the application's filters isolate
                assert resp.json()["who"] == role and resp.json()["count"] == 6
                jobs = await api.client.get("/api/v1/jobs", headers=bearer(b["key"]))
                assert len(jobs.json()) == 3
            conn = await asyncpg.connect(dsn)
            try:
                await _init_connection(conn)
                assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
                assert await conn.fetchval("SELECT count(*) FROM jobs") == 6  # owner: bypass path
            finally:
                await conn.close()
    finally:
        admin = await asyncpg.connect(pg_server.dsn())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await admin.close()
