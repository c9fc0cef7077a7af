"""Operator CLI (`spooled-backend doctor | orgs | keys | queues | jobs | dlq`), run as a user
runs it: the installed console script in a subprocess against the test database, checked
against what the API then sees."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job
from tests.support import RedisServer, free_port

BIN = Path(sys.executable).parent / "spooled-backend"


async def cli(db_url: str, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    full_env.update({"DATABASE_URL": db_url, "PORT": str(free_port()),
                     "METRICS_PORT": str(free_port()), "GRPC_PORT": str(free_port()),
                     "HOST": "127.0.0.1", "COLUMNS": "200", **env})
    proc = await asyncio.to_thread(subprocess.run, [str(BIN), *args], env=full_env,
                                   capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


def data(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


async def test_doctor_all_green_then_database_down(
    db_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"REDIS_URL": redis_server.url, "SPOOLED_DATA_DIR": str(tmp_path)}
    checks = data(await cli(db_url, "doctor", "--json", **env))
    names = [c["name"] for c in checks]
    assert names == ["configuration", "port PORT", "port METRICS_PORT", "port GRPC_PORT",
                     "data directory", "database", "migrations", "clock skew", "redis"]
    assert all(c["ok"] for c in checks), checks
    text = (await cli(db_url, "doctor", **env)).stdout
    assert len(text.strip().splitlines()) == 9 and text.count("✓") == 9

    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nope"
    down = await cli(dead, "doctor", ok=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}",
                     SPOOLED_DATA_DIR=str(tmp_path))
    assert down.returncode == 1
    assert "✗ database: Failed to connect to database" in down.stdout
    assert "✗ redis: Redis unavailable, running without cache" in down.stdout


async def test_doctor_reports_pending_migrations_and_busy_port(db_url: str, conn: Any,
                                                               tmp_path: Path) -> None:
    await conn.execute("UPDATE alembic_version SET version_num = '0003'")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await cli(db_url, "doctor", ok=False, SPOOLED_DATA_DIR=str(tmp_path))
        proc_port = await cli(db_url, "doctor", "--json", ok=False, PORT=str(port),
                              SPOOLED_DATA_DIR=str(tmp_path))
    assert "✗ migrations: at 0003, head is" in proc.stdout
    [port_check] = [c for c in data(proc_port) if c["name"] == "port PORT"]
    assert not port_check["ok"] and "in use" in port_check["detail"]


async def test_orgs_keys_queues_jobs_dlq(db_url: str, api: Api) -> None:
    slug = f"acme-{os.getpid()}"
    created = data(await cli(db_url, "orgs", "create", "Acme Ops", "--slug", slug,
                             "--plan", "enterprise", "--json"))
    org_id, key = created["organization"]["id"], created["api_key"]["key"]
    assert created["organization"]["plan_tier"] == "enterprise"
    listed = data(await cli(db_url, "orgs", "list", "--search", slug, "--json"))
    assert [o["id"] for o in listed["organizations"]] == [org_id]
    assert slug in (await cli(db_url, "orgs", "list")).stdout

    scoped = data(await cli(db_url, "keys", "create", "--org", slug, "--name", "ci",
                            "--queues", "emails", "--json"))
    assert scoped["queues"] == ["emails"]
    h_scoped = api.as_key(scoped["key"])
    assert (await api.client.get("/api/v1/jobs", headers=h_scoped)).status_code == 200
    await cli(db_url, "keys", "revoke", "--org", org_id, scoped["id"])
    denied = await api.client.get("/api/v1/jobs", headers=h_scoped)
    assert denied.status_code == 401 and denied.json()["message"] == "Invalid API key"

    h = api.as_key(key)
    ok_job = await create_job(api, h, queue_name="emails")
    dead = [await create_job(api, h, queue_name="emails", max_retries=0) for _ in range(3)]
    leases = {j["id"]: j["lease_id"] for j in await claim(api, h, queue="emails", limit=4)}
    for job_id in dead:
        assert (await ack(api, h, job_id, "fail", worker_id="w1",
                          lease_id=leases[job_id])).status_code == 200
    stats = data(await cli(db_url, "jobs", "stats", "--org", slug, "--json"))
    assert (stats["deadletter"], stats["processing"], stats["total"]) == (3, 1, 4)
    assert leases[ok_job]

    queues = data(await cli(db_url, "queues", "list", "--org", slug, "--json"))
    assert [q["queue_name"] for q in queues] == ["emails"]
    paused = data(await cli(db_url, "queues", "pause", "--org", slug, "emails", "--reason",
                            "maintenance", "--json"))
    assert paused["paused"] is True and paused["reason"] == "maintenance"
    await create_job(api, h, queue_name="emails")
    assert await claim(api, h, queue="emails") == []
    assert data(await cli(db_url, "queues", "resume", "--org", slug, "emails", "--json"))["resumed"]
    assert len(await claim(api, h, queue="emails")) == 1

    dlq = data(await cli(db_url, "dlq", "list", "--org", slug, "--json"))
    assert sorted(j["id"] for j in dlq) == sorted(dead)
    retried = await cli(db_url, "dlq", "retry", "--org", slug, "--all", "--limit", "2")
    assert "retrying" in retried.stdout and "3/3" in retried.stdout
    after = data(await cli(db_url, "jobs", "stats", "--org", slug, "--json"))
    assert (after["deadletter"], after["pending"]) == (0, 3)

    refused = await cli(db_url, "dlq", "purge", "--org", slug, ok=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    leases = {j["id"]: j["lease_id"] for j in await claim(api, h, queue="emails", limit=3)}
    for job_id, lease in leases.items():
        await ack(api, h, job_id, "fail", worker_id="w1", lease_id=lease)
    purged = data(await cli(db_url, "dlq", "purge", "--org", slug, "--yes", "--json"))
    assert purged == {"purged_count": 3}
    missing = await cli(db_url, "jobs", "stats", "--org", "no-such-org", ok=False)
    assert missing.returncode == 1 and "Error: Organization 'no-such-org' not found" in missing.stderr
