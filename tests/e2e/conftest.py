"""Session-wide real servers (`spooled-backend serve`, embedded PostgreSQL), one with Redis and
one without, and per-test organizations created through the SDK's public registration."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from spooled.client import SpooledClient

from tests.e2e.server import ServerProcess
from tests.support import RedisServer

_counter = itertools.count()

# Public registration gives DEFAULT_PLAN_TIER (CONTRACT §20 D3); enterprise keeps the free
# plan's 5 req/s and 1-worker caps out of the flows under test. The lease-recovery sweep runs
# every second so the stale-lease test waits ~1 s instead of 10 s. Every test registers its own
# organization, so a cheap bcrypt cost saves ~0.5 s of CPU per test (the restart test keeps the
# default cost).
SERVER_ENV = {
    "DEFAULT_PLAN_TIER": "enterprise",
    "SCHEDULER_LEASE_RECOVERY_INTERVAL_SECS": "1",
    "API_KEY_BCRYPT_COST": "4",
}


def stop_cleanly(server: ServerProcess) -> None:
    """SIGTERM → exit code 0 within 30 s and the embedded PostgreSQL stopped."""
    code = server.stop(timeout=30)
    assert code == 0, f"exit code {code}:\n{server.output()}"
    assert not server.pid_file.exists(), "embedded PostgreSQL still running (postmaster.pid)"


def _serve(tmp_path: Path, redis_url: str | None) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", redis_url=redis_url, env=dict(SERVER_ENV))
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            stop_cleanly(server)


@pytest.fixture(scope="session")
def server_with_redis(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory.mktemp("e2e-redis"), redis_server.url)


@pytest.fixture(scope="session")
def server_without_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory.mktemp("e2e-plain"), None)


@pytest.fixture(scope="session", params=["redis", "no-redis"])
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """Both session servers in turn: every SDK test runs with and without Redis."""
    name = "server_with_redis" if request.param == "redis" else "server_without_redis"
    live: ServerProcess = request.getfixturevalue(name)
    assert live.proc is not None and live.proc.poll() is None, live.output()
    return live


@dataclass
class Tenant:
    org_id: str
    slug: str
    key: str
    base_url: str

    def client(self) -> SpooledClient:
        return SpooledClient(api_key=self.key, base_url=self.base_url)


@pytest.fixture
def make_tenant(server: ServerProcess) -> Callable[[], Tenant]:
    """Registers a fresh organization through `client.organizations.create` (public route; the
    bootstrap key rides along as Bearer and must be ignored) and returns its key."""

    def make() -> Tenant:
        slug = f"e2e-{os.getpid()}-{next(_counter)}"
        with SpooledClient(api_key=server.bootstrap_key(), base_url=server.base_url) as admin:
            created = admin.organizations.create({"name": f"E2E {slug}", "slug": slug})
        assert created.organization.slug == slug
        assert created.api_key.key.startswith("sk_test_")
        return Tenant(created.organization.id, slug, created.api_key.key, server.base_url)

    return make


@pytest.fixture
def tenant(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
def client(tenant: Tenant) -> Iterator[SpooledClient]:
    with tenant.client() as sdk:
        yield sdk
