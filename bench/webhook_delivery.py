"""Throughput of the outgoing-webhook delivery loop (webhooks/tasks.py) to a local receiver.

An embedded PostgreSQL, one organization subscribed to `job.created` with a signing secret, and
`--deliveries` jobs inserted in one statement (the outbox trigger writes one delivery each).
The loop then claims, signs, sends and records them at several concurrency caps
(`OUTGOING_WEBHOOK_MAX_CONCURRENT_DELIVERIES`). The peer, measured in the same run, is bare
httpx POSTing the same bodies to the same receiver at the same concurrency with no database:
the ratio is what durability (claim + record per delivery) costs. The receiver is a minimal
HTTP/1.1 server in a subprocess, so it does not share the loop's CPU.

    python -m bench.webhook_delivery [--deliveries 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import httpx

from spooled_backend.config import Settings
from spooled_backend.db.pool import create_pool
from spooled_backend.webhooks.tasks import Dispatcher

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.pg import migrated_database  # noqa: E402
from tests.support import free_port  # noqa: E402

RECEIVER = textwrap.dedent("""
    import asyncio, sys

    class Handler(asyncio.Protocol):
        def connection_made(self, transport):
            self.t, self.buf = transport, b""
        def data_received(self, data):
            self.buf += data
            while True:
                head, sep, rest = self.buf.partition(b"\\r\\n\\r\\n")
                if not sep:
                    return
                length = 0
                for line in head.split(b"\\r\\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                if len(rest) < length:
                    return
                self.buf = rest[length:]
                self.t.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")

    async def main():
        server = await asyncio.get_running_loop().create_server(Handler, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())
""")


async def seed(conn: asyncpg.Connection, url: str) -> None:
    await conn.execute("INSERT INTO organizations (id, name, slug, plan_tier) "
                       "VALUES ('bench', 'bench', 'bench', 'enterprise')")
    await conn.execute("INSERT INTO outgoing_webhooks (organization_id, name, url, events, secret) "
                       "VALUES ('bench', 'b', $1, ARRAY['job.created'], 'bench-secret')", url)


async def loop_rate(dsn: str, n: int, concurrency: int) -> float:
    settings = Settings(_env_file=None, database_url=dsn, rust_env="development",  # type: ignore[call-arg]
                        outgoing_webhook_max_concurrent_deliveries=concurrency)
    pool = await create_pool(dsn, settings)
    try:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM outgoing_webhook_deliveries")
            await conn.execute(
                "INSERT INTO jobs (organization_id, queue_name, payload) "
                "SELECT 'bench', 'q', jsonb_build_object('i', g) FROM generate_series(1, $1) g", n)
        dispatcher = Dispatcher(pool, settings, poll_interval_secs=0.01)
        start = time.perf_counter()
        await dispatcher.start()
        async with pool.acquire() as conn:
            while await conn.fetchval("SELECT count(*) FROM outgoing_webhook_deliveries "
                                      "WHERE status = 'success'") < n:
                await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - start
        await dispatcher.stop()
        return n / elapsed
    finally:
        await pool.close()


async def bare_rate(url: str, n: int, concurrency: int) -> float:
    body = b'{"id":"x","event":"job.created","created_at":"2026-01-01T00:00:00Z","data":{"i":1}}'
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                (await client.post(url, content=body)).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


async def main(n: int) -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)], stdout=subprocess.PIPE)
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == b"ready"
    url = f"http://127.0.0.1:{port}/hook"
    rows = []
    try:
        async with migrated_database() as dsn:
            conn = await asyncpg.connect(dsn)
            await seed(conn, url)
            await conn.close()
            for concurrency in (1, 16, 64):
                loop = await loop_rate(dsn, n, concurrency)
                bare = await bare_rate(url, n, concurrency)
                rows.append((concurrency, loop, bare))
    finally:
        receiver.terminate()
    print(f"Webhook deliveries per second to a local receiver ({n} deliveries per cell)\n")
    print("| concurrency | delivery loop /s | bare httpx /s | loop / bare |")
    print("|-------------|------------------|---------------|-------------|")
    for concurrency, loop, bare in rows:
        print(f"| {concurrency:>11} | {loop:>16.0f} | {bare:>13.0f} | {loop / bare:>11.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=2000)
    asyncio.run(main(parser.parse_args().deliveries))
