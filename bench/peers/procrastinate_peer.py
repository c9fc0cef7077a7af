"""Procrastinate 3.10 (psycopg 3 connector), as its documentation describes it.

Throughput mode: one async worker with `concurrency=N` (the "howto/production/concurrency"
recommendation for async tasks: one worker, N concurrent jobs, rather than N processes), LISTEN/
NOTIFY on (the default `listen_notify=True`), `wait=False` for drains (the worker exits once it
has caught up with the queue), bulk enqueue with `Task.batch_defer_async`, a psycopg pool sized
to the concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import procrastinate
import psycopg

from bench.peers.common import emit, open_loop, percentiles, spec, wait_until

logging.getLogger("procrastinate").setLevel(logging.WARNING)

STATE: dict[str, object] = {}


def make_app(dsn: str, pool: int) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=dsn, min_size=2, max_size=max(4, pool)))

    @app.task(name="noop", queue="bench")
    async def noop(t: float = 0.0, due: float = 0.0) -> None:
        hook = STATE.get("hook")
        if hook is not None:
            hook(t, due)  # type: ignore[operator]

    STATE["task"] = noop
    return app


async def reset(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    app = make_app(dsn, 2)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def drain(dsn: str, task: dict) -> dict:
    await reset(dsn)
    n, consumers = task["jobs"], task["consumers"]
    app = make_app(dsn, consumers + 4)
    done = 0
    last = time.perf_counter()

    def hook(t: float, due: float) -> None:
        nonlocal done, last
        done += 1
        last = time.perf_counter()

    async with app.open_async():
        noop = STATE["task"]
        for start in range(0, n, 5000):
            await noop.batch_defer_async(*({} for _ in range(min(5000, n - start))))  # type: ignore[attr-defined]
        STATE["hook"] = hook
        start = time.perf_counter()
        worker = asyncio.create_task(app.run_worker_async(
            queues=["bench"], concurrency=consumers, wait=False))
        finished = await wait_until(worker.done, task["cap"])
        elapsed = (last if finished else time.perf_counter()) - start
        if not finished:
            worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    return {"status": "ok", "jobs_per_s": done / elapsed, "completed": done, "seconds": elapsed,
            "capped": not finished}


async def with_idle_worker(dsn: str, hook, body) -> None:
    app = make_app(dsn, 24)
    STATE["hook"] = hook
    async with app.open_async():
        worker = asyncio.create_task(app.run_worker_async(queues=["bench"], concurrency=8))
        await asyncio.sleep(0.5)
        try:
            await body(STATE["task"])
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def pickup(dsn: str, task: dict) -> dict:
    await reset(dsn)
    lat: list[float] = []
    out: dict = {}

    async def body(noop) -> None:
        _, errors = await open_loop(task["rate"], task["seconds"],
                                    lambda i: noop.defer_async(t=time.time()))
        sent = int(task["rate"] * task["seconds"]) - errors
        await wait_until(lambda: len(lat) >= sent, task["grace"])
        out.update(sent=sent, errors=errors)

    await with_idle_worker(dsn, lambda t, due: lat.append(time.time() - t), body)
    return {"status": "ok", **percentiles(lat), "picked": len(lat), **out}


async def delayed(dsn: str, task: dict) -> dict:
    await reset(dsn)
    n, spread = task["jobs"], task["spread"]
    lateness: list[float] = []
    t0 = time.time() + task["lead"] + n / 1000
    due = [t0 + i * spread / n for i in range(n)]

    async def body(noop) -> None:
        sem = asyncio.Semaphore(16)

        async def one(d: float) -> None:
            async with sem:
                await noop.configure(schedule_at=datetime.fromtimestamp(d, UTC)).defer_async(due=d)

        await asyncio.gather(*(one(d) for d in due))
        await wait_until(lambda: len(lateness) >= n,
                         t0 - time.time() + spread + task["grace"], 0.05)

    await with_idle_worker(dsn, lambda t, d: lateness.append(max(0.0, time.time() - d)), body)
    return {"status": "ok", **percentiles(lateness), "due": n, "picked": len(lateness)}


async def enqueue_latency(dsn: str, task: dict) -> dict:
    await reset(dsn)
    app = make_app(dsn, 16)
    async with app.open_async():
        noop = STATE["task"]
        lat, errors = await open_loop(task["rate"], task["seconds"],
                                      lambda i: noop.defer_async())  # type: ignore[attr-defined]
    return {"status": "ok", **percentiles(lat), "errors": errors}


async def main() -> None:
    s = spec()
    for task in s["tasks"]:
        fn = {"drain": drain, "pickup": pickup, "delayed": delayed,
              "enqueue": enqueue_latency}[task["kind"]]
        STATE.pop("hook", None)
        try:
            result = await fn(s["dsn"], task)
        except Exception as exc:
            result = {"status": f"error: {exc!r}"[:300]}
        emit(task, result)


if __name__ == "__main__":
    asyncio.run(main())
