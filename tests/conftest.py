"""Session-wide servers and per-test databases.

One embedded PostgreSQL per test session; the schema is migrated once into a template database
and every test that needs a database gets a fresh copy (`CREATE DATABASE … TEMPLATE`).
One Redis server per session; tests that need isolation flush it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from spooled_backend.config import Settings
from spooled_backend.core.state import AppState
from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.migrate import upgrade_to_head
from spooled_backend.db.pool import _init_connection
from tests.support import PgBouncer, RedisServer

TEMPLATE = "spooled_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), fast_unsafe=True, max_connections=400)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_dsn(pg_server: EmbeddedPostgres) -> str:
    import asyncio

    async def create() -> None:
        conn = await asyncpg.connect(pg_server.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()

    asyncio.run(create())
    dsn = pg_server.dsn(TEMPLATE)
    upgrade_to_head(dsn)
    return dsn


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest_asyncio.fixture
async def db_url(pg_server: EmbeddedPostgres, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test; dropped afterwards."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await admin.close()
    yield pg_server.dsn(name)
    admin = await asyncpg.connect(pg_server.dsn())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


# SPOOLED_TEST_PGBOUNCER=1 (CI runs tests/integration once so): the apps under test reach their
# database through a PgBouncer in transaction mode, as in production (DATABASE_URL on 6432,
# DATABASE_DIRECT_URL direct for LISTEN and migrations, statement cache off). Test code's own
# connections (`db_url`, `conn`) stay direct, like an operator's psql.
PGBOUNCER: PgBouncer | None = None


@pytest.fixture(scope="session", autouse=True)
def pgbouncer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[PgBouncer | None]:
    global PGBOUNCER
    if os.environ.get("SPOOLED_TEST_PGBOUNCER", "") not in ("1", "true"):
        yield None
        return
    pg_server: EmbeddedPostgres = request.getfixturevalue("pg_server")
    PGBOUNCER = PgBouncer(tmp_path_factory.mktemp("pgbouncer"), pg_server.port or 0,
                          run_as=pg_server._run_as)
    yield PGBOUNCER
    PGBOUNCER.stop()
    PGBOUNCER = None


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "redis_url": None,
        "rust_env": "development",
        "jwt_secret": "k3Yq8vT2pLm9Zr4Wx7Nb1Cd6Fg0Hj5Qs",
        "api_key_bcrypt_cost": 4,
        "database_min_connections": 1,
        "database_max_connections": 30,
        "admin_api_key": "admin-test-key-0123456789",
    }
    if PGBOUNCER is not None:
        values.update(database_url=PGBOUNCER.url(db_url), database_direct_url=db_url,
                      database_statement_cache=False)
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest_asyncio.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    await _init_connection(connection)
    yield connection
    await connection.close()


@dataclass
class Api:
    """An in-process app with its state and an HTTP client bound to it."""

    client: httpx.AsyncClient
    state: AppState

    async def create_org(self, slug: str | None = None, **fields: Any) -> dict[str, Any]:
        slug = slug or f"org-{next(_counter)}"
        body = {"name": fields.pop("name", f"Org {slug}"), "slug": slug, **fields}
        resp = await self.client.post("/api/v1/organizations", json=body)
        assert resp.status_code == 201, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def as_key(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest_asyncio.fixture
async def api(settings: Settings, db_url: str) -> AsyncIterator[Api]:
    """The app without background loops (tests drive sweeps explicitly)."""
    async for item in _api(settings, db_url):
        yield item


async def _api(settings: Settings, db_url: str, run_loops: bool = False) -> AsyncIterator[Api]:
    from spooled_backend.app import create_app

    app = create_app(settings, settings.database_url or db_url, run_loops=run_loops)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, state=app.state.services)


@pytest_asyncio.fixture
async def tenant(api: Api) -> dict[str, Any]:
    """An organization on the enterprise plan (no quotas in the way) with its key headers."""
    created = await api.create_org()
    org_id = created["organization"]["id"]
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1", org_id)
    key = created["api_key"]["key"]
    return {"org_id": org_id, "key": key, "headers": api.as_key(key)}
