"""A minimal PostgreSQL queue: one table, one SKIP LOCKED claim. The floor the server is
compared with (no HTTP, no auth, no tenancy, no history, no events)."""

from __future__ import annotations

import json
from typing import Self

import asyncpg

DATABASE = "bench_baseline"

SCHEMA = """
DROP TABLE IF EXISTS bench_jobs;
CREATE TABLE bench_jobs (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    worker_id text,
    lease_id uuid,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX bench_jobs_pending ON bench_jobs (queue, id) WHERE status = 'pending';
"""

INSERT = "INSERT INTO bench_jobs (queue, payload) VALUES ($1, $2::jsonb) RETURNING id"

CLAIM = """
UPDATE bench_jobs SET status = 'processing', worker_id = $2, lease_id = gen_random_uuid()
WHERE id IN (
    SELECT id FROM bench_jobs WHERE queue = $1 AND status = 'pending'
    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED
)
RETURNING id, lease_id
"""

COMPLETE = """
UPDATE bench_jobs SET status = 'completed', result = $3::jsonb, completed_at = now(), lease_id = NULL
WHERE id = $1 AND lease_id = $2 AND status = 'processing'
"""


class BaselineQueue:
    """Same interface as HttpQueue; each call is one autocommitted statement on a pooled
    connection of database `bench_baseline` (created in the server's embedded PostgreSQL)."""

    def __init__(self, server_dsn: str, connections: int) -> None:
        self._server_dsn = server_dsn
        self._size = connections
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Self:
        admin = await asyncpg.connect(f"{self._server_dsn}/postgres")
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await admin.close()
        self._pool = await asyncpg.create_pool(
            f"{self._server_dsn}/{DATABASE}", min_size=self._size, max_size=self._size)
        await self._pool.execute(SCHEMA)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None
        return self._pool

    async def create(self, queue: str, payload: dict[str, object]) -> str:
        return str(await self.pool.fetchval(INSERT, queue, json.dumps(payload)))

    async def claim(self, queue: str, worker: str, limit: int) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(CLAIM, queue, worker, limit)
        return [(str(r["id"]), str(r["lease_id"])) for r in rows]

    async def complete(self, job_id: str, worker: str, lease: str) -> None:
        status = await self.pool.execute(COMPLETE, int(job_id), lease, json.dumps({"ok": True}))
        if status != "UPDATE 1":
            raise RuntimeError(f"baseline complete of {job_id} updated nothing")
