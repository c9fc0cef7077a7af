"""Single-statement tenant transactions in one round trip (db/onetrip.py): the generated
functions bind the tenant (RLS applies), check cached keys before writing, commit alone, and
the service falls back to BEGIN…COMMIT when a function is missing or cannot be created."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from spooled_backend.core.tenancy import KEY_CHANGED, TENANT_ROLE
from spooled_backend.db.onetrip import PREFIX, OneTrip
from spooled_backend.db.pool import _init_connection
from spooled_backend.jobs import queries as q
from spooled_backend.jobs.service import NewJob, insert_arguments
from tests.conftest import Api


class Recording(asyncpg.Connection):  # type: ignore[misc]
    """Remembers every query text it was given."""

    sent: list[str]

    def _record(self, query: str) -> None:
        if not hasattr(self, "sent"):
            self.sent = []
        self.sent.append(query)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        self._record(query)
        return await super().execute(query, *args, timeout=timeout)  # type: ignore[no-any-return]

    async def fetch(self, query: str, *args: Any, timeout: float | None = None,
                    record_class: Any = None) -> list[Any]:
        self._record(query)
        return await super().fetch(query, *args, timeout=timeout)  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def recording(db_url: str) -> AsyncIterator[Recording]:
    connection = await asyncpg.connect(db_url, connection_class=Recording)
    await _init_connection(connection)
    yield connection
    await connection.close()


def _insert_args(org_id: str, queue: str, n: int = 1) -> tuple[Any, ...]:
    """INSERT_JOBS_MANY's parameters for `n` jobs (payload {"n": 1})."""
    return insert_arguments(org_id, [NewJob(queue, {"n": 1}) for _ in range(n)],
                            [str(uuid.uuid4()) for _ in range(n)], 3, 300)


async def _jobs(api: Api, org_id: str, queue: str) -> int:
    async with api.state.pool.acquire() as c:
        return int(await c.fetchval(
            "SELECT count(*) FROM jobs WHERE organization_id = $1 AND queue_name = $2", org_id, queue))


async def test_installed_at_startup_and_one_query_without_begin(
    api: Api, tenant: dict[str, Any], recording: Recording
) -> None:
    one_trip = api.state.one_trip
    assert set(one_trip.calls) == set(q.ONE_TRIP)
    assert all(call.startswith(f"SELECT * FROM {PREFIX}") for call in one_trip.calls.values())
    org = tenant["org_id"]
    rows = await one_trip.fetch(recording, (org, TENANT_ROLE), [], q.INSERT_JOBS_MANY,
                                *_insert_args(org, "one"))
    assert [(r["queue_name"], r["status"], r["created"]) for r in rows] == [("one", "pending", True)]
    assert recording.sent == [one_trip.calls[q.INSERT_JOBS_MANY]]  # no BEGIN, no COMMIT
    assert await _jobs(api, org, "one") == 1  # committed by itself
    # the binding ended with the call: the connection acts as the login role again
    row = await recording.fetchrow(
        "SELECT current_user AS who, current_setting('app.current_org_id', true) AS org")
    assert row["who"] != TENANT_ROLE and not row["org"]


async def test_row_level_security_applies_inside(api: Api, tenant: dict[str, Any]) -> None:
    org = tenant["org_id"]
    other = (await api.create_org())["organization"]["id"]
    created = await api.client.post("/api/v1/jobs", json={"queue_name": "rls", "payload": {}},
                                    headers=tenant["headers"])
    assert created.status_code == 201, created.text
    claim = (org, "rls", 10, "w", 30.0)
    async with api.state.pool.acquire() as conn:
        # bound to the other organization, the statement's own filter names `org`: RLS hides it
        assert await api.state.one_trip.fetch(conn, (other, TENANT_ROLE), [], q.CLAIM_JOBS, *claim) == []
        rows = await api.state.one_trip.fetch(conn, (org, TENANT_ROLE), [], q.CLAIM_JOBS, *claim)
    assert [r["id"] for r in rows] == [created.json()["id"]]
    assert rows[0]["status"] == "processing"


async def test_a_changed_key_is_refused_before_anything_is_written(
    api: Api, tenant: dict[str, Any]
) -> None:
    org = tenant["org_id"]
    async with api.state.pool.acquire() as conn:
        key_id = await conn.fetchval("SELECT id FROM api_keys WHERE organization_id = $1", org)
        with pytest.raises(asyncpg.PostgresError) as raised:
            await api.state.one_trip.fetch(conn, (org, TENANT_ROLE), [(key_id, "0" * 32)],
                                           q.INSERT_JOBS_MANY, *_insert_args(org, "stale"))
    assert raised.value.sqlstate == KEY_CHANGED
    assert await _jobs(api, org, "stale") == 0


async def test_a_dropped_function_falls_back_to_begin_commit(
    api: Api, tenant: dict[str, Any], recording: Recording
) -> None:
    org = tenant["org_id"]
    one_trip = api.state.one_trip
    name = one_trip.calls[q.INSERT_JOBS_MANY].split("(", 1)[0].rsplit(" ", 1)[1]
    async with api.state.pool.acquire() as conn:
        await conn.execute(f"DROP FUNCTION {name}")
    rows = await one_trip.fetch(recording, (org, TENANT_ROLE), [], q.INSERT_JOBS_MANY,
                                *_insert_args(org, "fallback"))
    assert [r["created"] for r in rows] == [True]
    assert q.INSERT_JOBS_MANY not in one_trip.calls
    assert recording.sent[-2] == q.INSERT_JOBS_MANY and recording.sent[-1] == "COMMIT;"
    assert recording.sent[-3].startswith("BEGIN; SELECT")
    assert await _jobs(api, org, "fallback") == 1
    # and the HTTP door keeps working on the slow path
    resp = await api.client.post("/api/v1/jobs", json={"queue_name": "fallback", "payload": {}},
                                 headers=tenant["headers"])
    assert resp.status_code == 201, resp.text
    assert await _jobs(api, org, "fallback") == 2


async def test_without_create_privilege_the_statements_run_in_transactions(
    api: Api, db_url: str
) -> None:
    role = f"nocreate_{uuid.uuid4().hex[:8]}"
    async with api.state.pool.acquire() as conn:
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        await conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
        await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}")
        for name in api.state.one_trip.calls.values():  # as on a database never served before
            await conn.execute(f"DROP FUNCTION {name.split('(', 1)[0].rsplit(' ', 1)[1]}")
    dsn = db_url.replace("postgres@", f"{role}@", 1)
    assert dsn != db_url
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        one_trip = OneTrip()
        await one_trip.install(pool, q.ONE_TRIP)
        assert one_trip.calls == {}
        async with pool.acquire() as conn:
            due = await one_trip.fetch(conn, (str(uuid.uuid4()), None), [], q.NEXT_DUE,
                                       str(uuid.uuid4()), "none")
        assert [tuple(r) for r in due] == [(None,)]
    finally:
        await pool.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


async def test_claim_reads_only_what_it_claims_before_statistics_exist(
    api: Api, tenant: dict[str, Any]
) -> None:
    """Failing input (bench (d), auto_explain): 2,000 jobs of a tenant just inserted, no ANALYZE
    yet; the claim's UPDATE was planned through the RLS policy's organization qual and read
    every job of the tenant. Since migration 0010 the policy is a filter only."""
    org = tenant["org_id"]
    async with api.state.pool.acquire() as conn:
        for _ in range(20):
            await api.state.one_trip.fetch(conn, (org, TENANT_ROLE), [], q.INSERT_JOBS_MANY,
                                           *_insert_args(org, "fresh", 100))
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'jobs' AND attname = 'organization_id'"
        ) == 0  # never analyzed: the planner runs on default estimates
        async with conn.transaction():
            await conn.execute("SELECT set_config('role', $1, true), "
                               "set_config('app.current_org_id', $2, true)", TENANT_ROLE, org)
            [plan] = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + q.CLAIM_JOBS,
                                         org, "fresh", 1, "w", 30.0)
    nodes = _nodes(plan["Plan"])
    assert "jobs_org_status_created_idx" not in {n.get("Index Name") for n in nodes}
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) < 10
    assert plan["Plan"]["Shared Hit Blocks"] < 150  # ~45 for one job; ~270 when it read them all


async def test_ack_probes_by_primary_key_on_stale_statistics(api: Api, tenant: dict[str, Any]) -> None:
    """Failing input (bench (a), auto_explain): statistics taken while the tenant had one job,
    then 2,000 more; ACK_JOBS's generic plan (the group commit's) probed each item through the
    organization index and read every job of the tenant per item."""
    org = tenant["org_id"]
    async with api.state.pool.acquire() as conn:
        await api.state.one_trip.fetch(conn, (org, TENANT_ROLE), [], q.INSERT_JOBS_MANY,
                                       *_insert_args(org, "stale"))
        await conn.execute("ANALYZE jobs")
        for _ in range(20):
            await api.state.one_trip.fetch(conn, (org, TENANT_ROLE), [], q.INSERT_JOBS_MANY,
                                           *_insert_args(org, "stale", 100))
        claimed = await api.state.one_trip.fetch(conn, (org, TENANT_ROLE), [], q.CLAIM_JOBS,
                                                 org, "stale", 5, "w", 30.0)
        assert len(claimed) == 5
        async with conn.transaction():
            await conn.execute("SELECT set_config('role', $1, true), "
                               "set_config('app.current_org_id', $2, true), "
                               "set_config('plan_cache_mode', 'force_generic_plan', true)",
                               TENANT_ROLE, org)
            await conn.execute(f"PREPARE stale_ack AS {q.ACK_JOBS}")
            def array(values: list[str | None]) -> str:  # our own uuids and constants
                return "ARRAY[" + ", ".join("NULL" if v is None else f"'{v}'" for v in values) + "]"

            [plan] = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE stale_ack("
                f"'{org}', {array(['w'] * 5)}, {array([r['id'] for r in claimed])}, "
                f"{array([r['lease_id'] for r in claimed])}, {array([None] * 5)}, "
                f"{array(['complete'] * 5)}, {array([None] * 5)}, NULL)")
            await conn.execute("DEALLOCATE stale_ack")
            job = claimed[0]
            others = {  # the other by-id lookups of a job (one row by its primary key)
                q.GET_JOB: f"'{job['id']}', '{org}'",
                q.HEARTBEAT_JOB: f"'{job['id']}', '{org}', 'w', '{job['lease_id']}', 30, NULL",
            }
            for number, (sql, arguments) in enumerate(others.items()):
                await conn.execute(f"PREPARE stale_{number} AS {sql}")
                [other] = await conn.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE stale_{number}({arguments})")
                indexes = {n.get("Index Name") for n in _nodes(other["Plan"])}
                assert "jobs_pkey" in indexes and "jobs_org_status_created_idx" not in indexes
    nodes = _nodes(plan["Plan"])
    assert "jobs_org_status_created_idx" not in {n.get("Index Name") for n in nodes}
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) < 100
    assert plan["Plan"]["Shared Hit Blocks"] < 400
