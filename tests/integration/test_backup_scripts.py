"""scripts/backup, scripts/backup-verify and scripts/db-maintenance (pg_dump/pg_restore) on a
real database: a backup restores into a scratch database with the same rows; a damaged one fails."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from spooled_backend.db.embedded import EmbeddedPostgres
from tests.conftest import Api
from tests.integration.jobs_support import create_job

ROOT = Path(__file__).resolve().parents[2]


async def sh(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOOLED_PYTHON": sys.executable}
    env.pop("DATABASE_URL", None)
    proc = await asyncio.to_thread(subprocess.run, [str(ROOT / "scripts" / args[0]), *args[1:]],
                                   capture_output=True, text=True, timeout=120, env=env)
    if ok:
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


async def test_backup_verify_restore_and_maintenance(
    api: Api, tenant: dict[str, Any], db_url: str, pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    for _ in range(3):
        await create_job(api, tenant["headers"], queue_name="backed-up")
    dump = Path((await sh("backup", db_url, str(tmp_path))).stdout.strip())
    assert dump.exists() and dump.suffix == ".dump"
    manifest = dict(line.split("|", 1) for line in dump.with_suffix(".dump.manifest").read_text().splitlines()
                    if line.startswith("revision"))
    assert manifest["revision"]
    assert "rows|jobs|3" in dump.with_suffix(".dump.manifest").read_text()
    verified = await sh("backup-verify", str(dump), "--restore-into", pg_server.dsn())
    assert "✓ checksum" in verified.stdout
    assert "revision and row counts match the manifest" in verified.stdout
    async with api.state.pool.acquire() as c:  # the scratch database is gone again
        assert await c.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE 'spooled_verify_%'") == 0

    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(dump.read_bytes()[: len(dump.read_bytes()) // 2])
    bad = await sh("backup-verify", str(damaged), "--restore-into", pg_server.dsn(), ok=False)
    assert bad.returncode != 0 and "✗" in bad.stderr
    (tmp_path / dump.name).with_suffix(".dump").write_bytes(b"x" + dump.read_bytes()[1:])
    tampered = await sh("backup-verify", str(dump), ok=False)
    assert "checksum mismatch" in tampered.stderr

    report = await sh("db-maintenance", db_url)
    assert "jobs" in report.stdout and "live_rows" in report.stdout
