"""What a user sees from the process: first start, restart on the same data dir, /health,
the degraded-mode log line, SIGTERM, and `spooled-backend migrate`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from alembic.script import ScriptDirectory
from spooled.client import SpooledClient

from spooled_backend.db.embedded import EmbeddedPostgres
from spooled_backend.db.migrate import alembic_config
from tests.e2e.conftest import stop_cleanly
from tests.e2e.server import BIN, ServerProcess, free_port

DEGRADED = "Redis unavailable, running without cache"
BOOTSTRAP_BANNER = "Created organization 'default'"


def curl_health(port: int) -> tuple[int, dict[str, Any]]:
    """`curl localhost:<port>/health` as the deployment guide shows (httpx if curl is absent)."""
    url = f"http://localhost:{port}/health"
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        body, code = out.rsplit("\n", 1)
        return int(code), json.loads(body)
    resp = httpx.get(url, timeout=10)
    return resp.status_code, resp.json()


def assert_health_shape(port: int, *, cache: bool) -> None:
    code, body = curl_health(port)
    assert code == 200
    assert set(body) - {"uptime_seconds"} == {"status", "version", "database", "cache"}, body
    assert body["status"] == "healthy" and body["database"] is True and body["cache"] is cache
    assert isinstance(body["version"], str) and body["version"]


def degraded_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if DEGRADED in line]


def test_health_shape_and_degraded_log(server: ServerProcess) -> None:
    """`cache` is true with Redis, false without; only the Redis-less server logs the line."""
    with_redis = server.redis_url is not None
    assert_health_shape(server.port, cache=with_redis)
    assert len(degraded_lines(server.output())) == (0 if with_redis else 1), server.output()


def test_restart_keeps_data_and_bootstraps_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, redis_url=None, env={"DEFAULT_PLAN_TIER": "enterprise"})
    server.start()
    try:
        first_output = server.output()
        key = server.bootstrap_key()
        assert first_output.count(BOOTSTRAP_BANNER) == 1 and key in first_output
        assert stat.S_IMODE(server.key_file.stat().st_mode) == 0o600
        assert len(degraded_lines(first_output)) == 1
        assert_health_shape(server.port, cache=False)

        with SpooledClient(api_key=key, base_url=server.base_url) as sdk:
            org = sdk.organizations.create({"name": "Persisted", "slug": "persisted-org"})
            job_id = sdk.jobs.create({"queue_name": "keep", "payload": {"v": 1}}).id
            claimed = sdk.jobs.claim({"queue_name": "keep", "worker_id": "w"}).jobs[0]
            sdk.jobs.complete(job_id, {"worker_id": "w", "lease_id": claimed.lease_id,
                                       "result": {"kept": True}})
            pending_id = sdk.jobs.create({"queue_name": "keep", "payload": {"v": 2}}).id
    finally:
        if server.proc is not None:
            stop_cleanly(server)

    # Second start on the same data dir; REDIS_URL points at a closed port this time.
    server.redis_url = f"redis://127.0.0.1:{free_port()}/0"
    server.start()
    try:
        second_output = server.output()
        assert BOOTSTRAP_BANNER not in second_output and key not in second_output
        assert server.bootstrap_key() == key
        assert len(degraded_lines(second_output)) == 1, second_output
        assert_health_shape(server.port, cache=False)
        with SpooledClient(api_key=key, base_url=server.base_url) as sdk:
            done = sdk.jobs.get(job_id)
            assert (done.status, done.result) == ("completed", {"kept": True})
            assert sdk.jobs.get(pending_id).status == "pending"
            assert sdk.jobs.get_stats().total == 2
        with SpooledClient(api_key=org.api_key.key, base_url=server.base_url) as tenant:
            assert [o.slug for o in tenant.organizations.list()] == ["persisted-org"]
    finally:
        if server.proc is not None:
            stop_cleanly(server)


def test_migrate_command_is_idempotent(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    """`spooled-backend migrate` with DATABASE_URL: applies the schema, then again is a no-op;
    no embedded server is started."""
    name = f"e2e_migrate_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def schema() -> tuple[str, int]:
        conn = await asyncpg.connect(pg_server.dsn(name))
        try:
            head = await conn.fetchval("SELECT version_num FROM alembic_version")
            tables = await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            return head, tables
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_DIRECT_URL", "REDIS_URL")}
        env.update(DATABASE_URL=pg_server.dsn(name), SPOOLED_DATA_DIR=str(tmp_path / "unused"))
        runs = []
        for _ in range(2):
            done = subprocess.run([str(BIN), "migrate"], env=env, cwd=tmp_path, capture_output=True,
                                  text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Migrations applied." in done.stdout
            runs.append(asyncio.run(schema()))
        head = ScriptDirectory.from_config(alembic_config(pg_server.dsn(name))).get_current_head()
        assert runs[0] == runs[1] and runs[0][0] == head, (runs, head)
        assert runs[0][1] >= 17, runs  # CONTRACT §18's tables (and later ones)
        assert not (tmp_path / "unused" / "postgres").exists()
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
