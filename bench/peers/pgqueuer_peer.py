"""PgQueuer 1.6 (asyncpg driver), as its README and CLI document it.

Throughput mode: one `QueueManager` per consumer, each on its own asyncpg connection (the shape
of `pgq run` processes and of PgQueuer's own benchmark tool), `batch_size=10` (the CLI default:
"number of jobs to pull from the queue at once"), LISTEN/NOTIFY wake-ups (always on), bulk
enqueue with the list form of `Queries.enqueue`. Drains use `mode=drain` (exits when empty).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Queries, QueueManager
from pgqueuer.domain.types import QueueExecutionMode

from bench.peers.common import emit, open_loop, percentiles, spec, wait_until

ENTRY = "noop"


async def reset(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        if await queries.schema_is_installed():
            await queries.uninstall()
        await queries.install()
    finally:
        await conn.close()


async def enqueue_bulk(dsn: str, payloads: list[bytes | None],
                       after: list[timedelta | None] | None = None) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        for start in range(0, len(payloads), 5000):
            chunk = payloads[start:start + 5000]
            await queries.enqueue([ENTRY] * len(chunk), chunk, [0] * len(chunk),
                                  after[start:start + 5000] if after else None)
    finally:
        await conn.close()


async def consumer(dsn: str, handler) -> tuple[QueueManager, asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRY)
    async def noop(job) -> None:
        handler(job)

    return qm, conn


async def drain(dsn: str, task: dict) -> dict:
    await reset(dsn)
    n = task["jobs"]
    await enqueue_bulk(dsn, [None] * n)
    done = 0
    last = time.perf_counter()

    def count(job) -> None:
        nonlocal done, last
        done += 1
        last = time.perf_counter()

    managers = [await consumer(dsn, count) for _ in range(task["consumers"])]
    start = time.perf_counter()
    runs = [asyncio.create_task(qm.run(batch_size=10, mode=QueueExecutionMode.drain,
                                       dequeue_timeout=timedelta(seconds=1)))
            for qm, _ in managers]
    finished = await wait_until(lambda: all(r.done() for r in runs), task["cap"])
    elapsed = (last if finished else time.perf_counter()) - start
    for qm, _ in managers:
        qm.shutdown.set()
    await asyncio.gather(*runs, return_exceptions=True)
    for _, conn in managers:
        await conn.close()
    for r in runs:
        if r.done() and not r.cancelled() and r.exception():
            return {"status": f"error: {r.exception()!r}"[:200]}
    return {"status": "ok", "jobs_per_s": done / elapsed, "completed": done, "seconds": elapsed,
            "capped": not finished}


async def idle_consumer(dsn: str, on_job) -> tuple[QueueManager, asyncpg.Connection, asyncio.Task]:
    qm, conn = await consumer(dsn, on_job)
    run = asyncio.create_task(qm.run(batch_size=10))
    await asyncio.sleep(0.5)
    return qm, conn, run


async def stop(qm: QueueManager, conn: asyncpg.Connection, run: asyncio.Task) -> None:
    qm.shutdown.set()
    try:
        await asyncio.wait_for(run, 10)
    except Exception:
        run.cancel()
    await conn.close()


async def pickup(dsn: str, task: dict) -> dict:
    await reset(dsn)
    lat: list[float] = []
    qm, conn, run = await idle_consumer(dsn, lambda job: lat.append(
        time.time() - float(job.payload)))
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=16)
    queries = Queries(AsyncpgPoolDriver(pool))
    _, errors = await open_loop(task["rate"], task["seconds"], lambda i: queries.enqueue(
        ENTRY, str(time.time()).encode()))
    sent = int(task["rate"] * task["seconds"]) - errors
    await wait_until(lambda: len(lat) >= sent, task["grace"])
    await stop(qm, conn, run)
    await pool.close()
    return {"status": "ok", **percentiles(lat), "sent": sent, "picked": len(lat),
            "errors": errors}


async def delayed(dsn: str, task: dict) -> dict:
    await reset(dsn)
    n, spread = task["jobs"], task["spread"]
    lateness: list[float] = []
    qm, conn, run = await idle_consumer(dsn, lambda job: lateness.append(
        max(0.0, time.time() - float(job.payload))))
    t0 = time.time() + task["lead"] + n / 5000
    due = [t0 + i * spread / n for i in range(n)]
    now = time.time()
    await enqueue_bulk(dsn, [str(d).encode() for d in due],
                       [timedelta(seconds=d - now) for d in due])
    await wait_until(lambda: len(lateness) >= n, t0 - time.time() + spread + task["grace"], 0.05)
    await stop(qm, conn, run)
    return {"status": "ok", **percentiles(lateness), "due": n, "picked": len(lateness)}


async def enqueue_latency(dsn: str, task: dict) -> dict:
    await reset(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=16)
    queries = Queries(AsyncpgPoolDriver(pool))
    lat, errors = await open_loop(task["rate"], task["seconds"],
                                  lambda i: queries.enqueue(ENTRY, b"x"))
    await pool.close()
    return {"status": "ok", **percentiles(lat), "errors": errors}


async def main() -> None:
    s = spec()
    for task in s["tasks"]:
        fn = {"drain": drain, "pickup": pickup, "delayed": delayed,
              "enqueue": enqueue_latency}[task["kind"]]
        try:
            result = await fn(s["dsn"], task)
        except Exception as exc:
            result = {"status": f"error: {exc!r}"[:300]}
        emit(task, result)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
