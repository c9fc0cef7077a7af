"""Workloads against our server over REST (and, unchanged, against bench/stub.py for the client
ceiling). Every function returns a result dict: {"status": "ok" | "n/a (...)", <figures>}.

Consumers: one consumer is one sequential loop on its own keep-alive connection (so "32
consumers" = 32 requests in flight at most). A drain consumer claims up to 100 jobs and then
either completes them one request each (what the SDK worker does per job) or acknowledges all
of them in one `POST /jobs/ack`. Every phase is bounded in time.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.loadclient import Conn, HttpError, Pool

API = "/api/v1"
CLAIM_LIMIT = 100


@dataclass
class Target:
    host: str
    port: int
    key: str

    def conn(self) -> Conn:
        return Conn(self.host, self.port, self.key)

    def pool(self, size: int = 256) -> Pool:
        return Pool(self.host, self.port, self.key, size)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) of seconds, in milliseconds by default."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "n": 0}
    s = sorted(values)

    def rank(p: float) -> float:
        return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))] * scale

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "n": len(s)}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def queue_name(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


async def enqueue(target: Target, queue: str, n: int, *, scheduled: list[float] | None = None,
                  concurrency: int = 4) -> float:
    """`n` jobs with payload {"i": i} through POST /jobs/bulk (100 per request); jobs/s."""
    batches = [list(range(start, min(n, start + 100))) for start in range(0, n, 100)]
    it = iter(batches)

    async def loop() -> None:
        conn = target.conn()
        try:
            for batch in it:
                jobs = []
                for i in batch:
                    item: dict[str, Any] = {"payload": {"i": i}}
                    if scheduled is not None:
                        item["scheduled_at"] = iso(scheduled[i])
                    jobs.append(item)
                body = await conn.post(f"{API}/jobs/bulk", {"queue_name": queue, "jobs": jobs})
                if body.get("failure_count"):
                    raise RuntimeError(f"bulk create failed: {body['failed'][:3]}")
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return n / max(time.perf_counter() - start, 1e-9)


# --------------------------------------------------------------------------- capabilities
async def capabilities(target: Target) -> dict[str, str | None]:
    """None when the server has the feature, else why not ("not on this server: 404")."""
    conn = target.conn()
    out: dict[str, str | None] = {}
    try:
        # Warm: the first request of a key pays its one-time verification.
        await conn.request("POST", f"{API}/jobs/claim", (
            '{"queue_name": "%s", "worker_id": "probe", "limit": 1}'
            % queue_name("probe")).encode())
        status, body = await conn.request("POST", f"{API}/jobs/ack", b'{"worker_id": "probe", '
                                          b'"completed": [{"job_id": "probe", "lease_id": "x"}],'
                                          b' "failed": []}')
        out["ack"] = None if status == 200 and b"results" in body else (
            f"not on this server: {status}")
        q = queue_name("probe")
        t0 = time.perf_counter()
        status, body = await conn.request("POST", f"{API}/jobs/claim", (
            '{"queue_name": "%s", "worker_id": "probe", "limit": 1, "wait_ms": 300}' % q).encode())
        waited = time.perf_counter() - t0
        if status != 200:
            out["wait_ms"] = f"not on this server: {status}"
        elif waited < 0.25:
            out["wait_ms"] = "not on this server: answered at once"
        else:
            out["wait_ms"] = None
    finally:
        await conn.close()
    return out


# --------------------------------------------------------------------------- (a) drain
async def drain(target: Target, consumers: int, jobs: int, cap: float, mode: str) -> dict:
    """Enqueue `jobs`, then `consumers` loops claim 100 and complete per job (`mode="complete"`)
    or batch-ack (`mode="ack"`) until the queue is empty or `cap` seconds pass."""
    queue = queue_name(f"drain-{mode}")
    enqueue_rate = await enqueue(target, queue, jobs)
    done = 0
    errors: list[str] = []
    deadline = time.perf_counter() + cap
    last = time.perf_counter()

    async def consumer(n: int) -> None:
        nonlocal done, last
        conn = target.conn()
        worker = f"drain-{n}"
        try:
            while time.perf_counter() < deadline:
                body = await conn.post(f"{API}/jobs/claim", {
                    "queue_name": queue, "worker_id": worker, "limit": CLAIM_LIMIT,
                    "lease_duration_secs": 300})
                claimed = body["jobs"]
                if not claimed:
                    return
                if mode == "ack":
                    res = await conn.post(f"{API}/jobs/ack", {"worker_id": worker, "completed": [
                        {"job_id": j["id"], "lease_id": j["lease_id"]} for j in claimed],
                        "failed": []})
                    bad = [r for r in res["results"] if not r.get("success")]
                    if bad:
                        raise RuntimeError(f"ack refused: {bad[:2]}")
                    done += len(claimed)
                else:
                    for j in claimed:
                        await conn.post(f"{API}/jobs/{j['id']}/complete", {
                            "worker_id": worker, "lease_id": j["lease_id"], "result": None})
                        done += 1
                last = time.perf_counter()
        except HttpError as exc:
            errors.append(str(exc))
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(consumer(n) for n in range(consumers)))
    if errors:
        if mode == "ack" and done == 0 and any(f"→ {c}" in errors[0] for c in (404, 405, 422)):
            return {"status": f"n/a (not on this server: {errors[0].split('→ ')[1][:3]})"}
        return {"status": f"error: {errors[0][:200]}", "completed": done}
    seconds = max(last - start, 1e-9)
    return {"status": "ok", "jobs_per_s": done / seconds, "completed": done,
            "seconds": seconds, "capped": done < jobs, "enqueue_per_s": enqueue_rate}


def sdk_drain(target: Target, concurrency: int, jobs: int, seconds: float,
              poll_interval: float | None) -> dict:
    """The official `SpooledWorker` (sync, threads) on `jobs` jobs for at most `seconds`."""
    from spooled import SpooledClient
    from spooled.worker import SpooledWorker

    queue = queue_name("sdk")
    # It sleeps poll_interval after every claim of at most `concurrency` jobs: enqueue what it
    # can possibly take in `seconds`, not the whole drain size.
    interval = poll_interval if poll_interval is not None else 1.0
    jobs = min(jobs, int(concurrency * seconds / interval * 1.5) + 50)
    asyncio.run(_run_enqueue(target, queue, jobs))
    client = SpooledClient(api_key=target.key, base_url=target.base_url)
    kwargs: dict[str, Any] = {"queue_name": queue, "concurrency": concurrency}
    if poll_interval is not None:
        kwargs["poll_interval"] = poll_interval
    worker = SpooledWorker(client, **kwargs)
    lock = threading.Lock()
    count = 0
    finished = threading.Event()
    last = [0.0]

    @worker.process
    def handler(ctx: Any) -> None:
        return None

    @worker.on("job:completed")
    def completed(data: Any) -> None:
        nonlocal count
        with lock:
            count += 1
            last[0] = time.perf_counter()
            if count >= jobs:
                finished.set()

    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # reported below
            errors.append(exc)

    start = time.perf_counter()
    thread = threading.Thread(target=run, name="sdk-worker", daemon=True)
    thread.start()
    finished.wait(seconds)
    elapsed = time.perf_counter() - start
    worker.stop()
    thread.join(30)
    client.close()
    if errors:
        return {"status": f"error: {errors[0]!r}"[:200]}
    if count >= jobs:
        elapsed = last[0] - start
    return {"status": "ok", "jobs_per_s": count / max(elapsed, 1e-9), "completed": count,
            "seconds": elapsed, "capped": count < jobs}


async def _run_enqueue(target: Target, queue: str, jobs: int) -> None:
    await enqueue(target, queue, jobs)


# --------------------------------------------------------------------------- consumers for (b), (c)
class Idle:
    """`n` consumers waiting for work: claim (limit 10) with `wait_ms`, or without it sleeping
    `poll` s after an empty claim; each claimed job is stamped on arrival, then acknowledged
    (batch ack when the server has it, else one complete per job)."""

    def __init__(self, target: Target, queue: str, n: int, wait_ms: int | None, poll: float,
                 use_ack: bool, on_job: Callable[[dict, float], None]) -> None:
        self.target, self.queue, self.n = target, queue, n
        self.wait_ms, self.poll, self.use_ack, self.on_job = wait_ms, poll, use_ack, on_job
        self.tasks: list[asyncio.Task] = []
        self.errors: list[str] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._loop(i)) for i in range(self.n)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _loop(self, n: int) -> None:
        conn = self.target.conn()
        worker = f"idle-{n}"
        body: dict[str, Any] = {"queue_name": self.queue, "worker_id": worker, "limit": 10,
                                "lease_duration_secs": 300}
        if self.wait_ms:
            body["wait_ms"] = self.wait_ms
        try:
            while True:
                try:
                    claimed = (await conn.post(f"{API}/jobs/claim", body))["jobs"]
                except HttpError as exc:
                    self.errors.append(str(exc))
                    await asyncio.sleep(0.1)
                    continue
                now = time.time()
                for j in claimed:
                    self.on_job(j, now)
                if not claimed:
                    if not self.wait_ms:
                        await asyncio.sleep(self.poll)
                    continue
                if self.use_ack:
                    await conn.post(f"{API}/jobs/ack", {"worker_id": worker, "failed": [],
                                    "completed": [{"job_id": j["id"], "lease_id": j["lease_id"]}
                                                  for j in claimed]})
                else:
                    for j in claimed:
                        await conn.post(f"{API}/jobs/{j['id']}/complete",
                                        {"worker_id": worker, "lease_id": j["lease_id"]})
        except asyncio.CancelledError:
            pass
        finally:
            await conn.close()


async def open_loop(rate: float, seconds: float, fn: Callable[[int], Awaitable[Any]],
                    drain_timeout: float = 10.0) -> tuple[list[float], int]:
    """Call fn(i) at `rate`/s for `seconds`, each call in its own task (arrivals never wait for
    answers). Latency is measured from the *scheduled* start, so a slow server cannot hide its
    queueing (no coordinated omission). Returns (latencies in s, errors)."""
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0

    async def one(i: int, due: float) -> None:
        nonlocal errors
        try:
            await fn(i)
            latencies.append(time.perf_counter() - due)
        except Exception:
            errors += 1

    tasks: dict[asyncio.Task, float] = {}
    start = time.perf_counter() + 0.02
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks[asyncio.create_task(one(i, due))] = due
    done, pending = await asyncio.wait(tasks, timeout=drain_timeout) if tasks else (set(), set())
    now = time.perf_counter()
    for task in pending:
        task.cancel()
        latencies.append(now - tasks[task])  # still unanswered: at least this long
    return latencies, errors + len(pending)


# --------------------------------------------------------------------------- (b) pickup latency
async def pickup(target: Target, rate: float, seconds: float, wait_ms: int | None, poll: float,
                 use_ack: bool, consumers: int = 8, grace: float = 5.0) -> dict:
    queue = queue_name("pickup")
    sent: dict[int, float] = {}
    lat: list[float] = []

    def on_job(job: dict, now: float) -> None:
        i = job["payload"]["i"]
        if i in sent:
            lat.append(now - sent[i])

    idle = Idle(target, queue, consumers, wait_ms, poll, use_ack, on_job)
    idle.start()
    await asyncio.sleep(0.3)  # consumers idle before the first job
    pool = target.pool(64)

    async def create(i: int) -> None:
        sent[i] = time.time()
        await pool.post(f"{API}/jobs", {"queue_name": queue, "payload": {"i": i}})

    _, errors = await open_loop(rate, seconds, create)
    deadline = time.monotonic() + grace
    while len(lat) < len(sent) - errors and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await idle.stop()
    await pool.close()
    return {"status": "ok", **percentiles(lat), "sent": len(sent), "picked": len(lat),
            "errors": errors + len(idle.errors)}


# --------------------------------------------------------------------------- (c) delayed jobs
async def delayed(target: Target, jobs: int, spread: float, wait_ms: int | None, poll: float,
                  use_ack: bool, consumers: int = 8, grace: float = 5.0, lead: float = 1.0) -> dict:
    queue = queue_name("delayed")
    t0 = time.time() + lead + jobs / 5000  # enqueue finishes before the first is due
    due = [t0 + i * spread / jobs for i in range(jobs)]
    lateness: list[float] = []
    early = 0

    def on_job(job: dict, now: float) -> None:
        nonlocal early
        late = now - due[job["payload"]["i"]]
        if late < -0.002:
            early += 1
        lateness.append(max(late, 0.0))

    idle = Idle(target, queue, consumers, wait_ms, poll, use_ack, on_job)
    await enqueue(target, queue, jobs, scheduled=due)
    idle.start()
    deadline = t0 + spread + grace
    while len(lateness) < jobs and time.time() < deadline:
        await asyncio.sleep(0.05)
    await idle.stop()
    return {"status": "ok", **percentiles(lateness), "due": jobs, "picked": len(lateness),
            "early": early, "errors": len(idle.errors)}


# --------------------------------------------------------------------------- (d) API latency
async def api_latency(target: Target, rate: float, seconds: float,
                      drain_timeout: float = 10.0) -> dict[str, dict]:
    """Open-loop create, then claim (limit 1) of those jobs, then complete of the claimed ones."""
    queue = queue_name("api")
    pool = target.pool(256)
    worker = "api-latency"
    out: dict[str, dict] = {}
    try:
        lat, err = await open_loop(rate, seconds, lambda i: pool.post(
            f"{API}/jobs", {"queue_name": queue, "payload": {"i": i}}), drain_timeout)
        out["create"] = {"status": "ok", **percentiles(lat), "errors": err}
        leases: list[tuple[str, str]] = []

        async def claim(i: int) -> None:
            body = await pool.post(f"{API}/jobs/claim", {"queue_name": queue, "worker_id": worker,
                                                         "limit": 1, "lease_duration_secs": 300})
            leases.extend((j["id"], j["lease_id"]) for j in body["jobs"])

        lat, err = await open_loop(rate, seconds, claim, drain_timeout)
        out["claim"] = {"status": "ok", **percentiles(lat), "errors": err}

        async def complete(i: int) -> None:
            job_id, lease = leases[i]
            await pool.post(f"{API}/jobs/{job_id}/complete",
                            {"worker_id": worker, "lease_id": lease})

        lat, err = await open_loop(rate, len(leases) / rate, complete, drain_timeout)
        out["complete"] = {"status": "ok", **percentiles(lat), "errors": err}
    finally:
        await pool.close()
    return out


# --------------------------------------------------------------------------- (e) claim vs history
async def claim_latency(target: Target, queue: str, samples: int) -> dict:
    """`samples` sequential claims of one job each from `queue` (already holding `samples`
    pending jobs), closed loop on one connection."""
    conn = target.conn()
    lat: list[float] = []
    try:
        for _ in range(samples):
            t = time.perf_counter()
            body = await conn.post(f"{API}/jobs/claim", {"queue_name": queue, "worker_id": "grow",
                                                         "limit": 1, "lease_duration_secs": 300})
            lat.append(time.perf_counter() - t)
            if not body["jobs"]:
                break
    finally:
        await conn.close()
    return {"status": "ok", **percentiles(lat)}
