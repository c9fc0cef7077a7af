"""The three phases run against any queue (HTTP server or bare PostgreSQL), and the tables."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

from bench.cpu import CpuMeter, delta


class BenchQueue(Protocol):
    async def create(self, queue: str, payload: dict[str, object]) -> str: ...

    async def claim(self, queue: str, worker: str, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` jobs as (job id, lease id)."""
        ...

    async def complete(self, job_id: str, worker: str, lease: str) -> None: ...


@dataclass
class Phase:
    """`count` jobs in `seconds` of wall time, and the CPU seconds each process used."""

    count: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def cpu_ms_per_job(self, who: str) -> float:
        return 1000 * self.cpu.get(who, 0.0) / self.count if self.count else 0.0


@dataclass
class Result:
    label: str
    create: Phase = field(default_factory=Phase)
    complete: Phase = field(default_factory=Phase)
    latency_ms: list[float] = field(default_factory=list)
    step_ms: dict[str, list[float]] = field(default_factory=dict)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def create_phase(q: BenchQueue, queue: str, jobs: int, concurrency: int,
                       timeout: float) -> tuple[int, float]:
    """`jobs` creates from `concurrency` loops; stops issuing after `timeout` s.
    Returns (created, seconds)."""
    counter = iter(range(jobs))
    deadline = time.monotonic() + timeout
    created = 0

    async def loop() -> None:
        nonlocal created
        for i in counter:
            if time.monotonic() > deadline:
                return
            await q.create(queue, {"i": i, "job_type": "bench"})
            created += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return created, time.perf_counter() - start


async def claim_complete_phase(q: BenchQueue, queue: str, workers: int, batch: int,
                               timeout: float) -> tuple[int, float]:
    """`workers` loops claim `batch` jobs and complete them concurrently until the queue is
    empty (or `timeout` s). Returns (completed, seconds)."""
    deadline = time.monotonic() + timeout
    completed = 0

    async def worker(n: int) -> None:
        nonlocal completed
        name = f"bench-w{n}"
        while time.monotonic() < deadline:
            jobs = await q.claim(queue, name, batch)
            if not jobs:
                return
            await asyncio.gather(*(q.complete(job_id, name, lease) for job_id, lease in jobs))
            completed += len(jobs)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    return completed, time.perf_counter() - start


async def latency_phase(q: BenchQueue, queue: str, samples: int, timeout: float,
                        result: Result) -> None:
    """Sequential create → claim → complete rounds; total and per-step milliseconds."""
    deadline = time.monotonic() + timeout
    steps: dict[str, list[float]] = {"create": [], "claim": [], "complete": []}
    for i in range(samples):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        await q.create(queue, {"i": i})
        t1 = time.perf_counter()
        jobs = await q.claim(queue, "bench-lat", 1)
        t2 = time.perf_counter()
        assert len(jobs) == 1, jobs
        await q.complete(jobs[0][0], "bench-lat", jobs[0][1])
        t3 = time.perf_counter()
        steps["create"].append((t1 - t0) * 1000)
        steps["claim"].append((t2 - t1) * 1000)
        steps["complete"].append((t3 - t2) * 1000)
        result.latency_ms.append((t3 - t0) * 1000)
    result.step_ms = steps


async def run_phases(label: str, q: BenchQueue, args: argparse.Namespace,
                     meter: CpuMeter) -> Result:
    result = Result(label)
    queue = "bench-rate"
    # Warm-up: the server bcrypt-verifies a key once per process; keep that out of the rates.
    await q.create("bench-warmup", {})
    for job_id, lease in await q.claim("bench-warmup", "bench-warmup", 1):
        await q.complete(job_id, "bench-warmup", lease)
    before = meter.snapshot()
    count, secs = await create_phase(q, queue, args.jobs, args.concurrency, args.phase_timeout)
    after = meter.snapshot()
    result.create = Phase(count, secs, delta(before, after))
    progress(f"{label}: {count} created in {secs:.1f} s")
    count, secs = await claim_complete_phase(q, queue, args.workers, args.batch, args.phase_timeout)
    result.complete = Phase(count, secs, delta(after, meter.snapshot()))
    progress(f"{label}: {count} claimed and completed in {secs:.1f} s")
    await latency_phase(q, "bench-latency", args.samples, args.phase_timeout, result)
    progress(f"{label}: {len(result.latency_ms)} latency rounds")
    return result


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu_cell(phase: Phase) -> str:
    return " + ".join(f"{phase.cpu_ms_per_job(w):.2f}" for w in ("server", "postgres", "bench"))


def render_tables(results: list[Result], args: argparse.Namespace) -> str:
    """Markdown: one column per queue, plus how many times the baseline does better."""
    heads = [r.label for r in results]
    ratio = len(results) == 2
    header = "| metric | " + " | ".join(heads) + (" | HTTP cost (×) |" if ratio else " |")
    sep = "|---" * (len(heads) + 1 + int(ratio)) + "|"
    rows: list[tuple[str, list[float], str]] = [
        (f"create, jobs/s (concurrency {args.concurrency})",
         [r.create.rate for r in results], "{:.0f}"),
        (f"claim+complete, jobs/s ({args.workers} workers × batch {args.batch})",
         [r.complete.rate for r in results], "{:.0f}"),
        ("create→claim→complete latency p50, ms",
         [percentile(r.latency_ms, 50) for r in results], "{:.2f}"),
        ("create→claim→complete latency p99, ms",
         [percentile(r.latency_ms, 99) for r in results], "{:.2f}"),
    ]
    for step in ("create", "claim", "complete"):
        rows.append((f"  {step} step p50, ms",
                     [percentile(r.step_ms.get(step, []), 50) for r in results], "{:.2f}"))
    lines = [header, sep]
    for name, values, fmt in rows:
        cells = [fmt.format(v) for v in values]
        if ratio:
            http, base = values
            better = "jobs/s" in name
            factor = (base / http if better else http / base) if http and base else 0.0
            cells.append(f"{factor:.1f}×")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, attr in (("create", "create"), ("claim+complete", "complete")):
        cells = [_cpu_cell(getattr(r, attr)) for r in results]
        lines.append(f"| {name}, CPU ms/job (server + PostgreSQL + bench client) | "
                     + " | ".join(cells) + (" | |" if ratio else " |"))
    counts = "; ".join(
        f"{r.label}: {r.create.count} created in {r.create.seconds:.1f} s, {r.complete.count} "
        f"completed in {r.complete.seconds:.1f} s, {len(r.latency_ms)} latency rounds"
        for r in results)
    return "\n".join(lines) + f"\n\n{counts}"
